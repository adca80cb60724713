//! Data inputs that are files, given to the guest alone. WASI grants
//! folders, and mounting a file's parent folder would hand the scorer every
//! sibling file as well; so each `uri_file` data input gets a folder of its
//! own under `dir` holding a hard link to the file (a copy when the file is
//! on another filesystem, or a hard link is refused), mounted read-only at
//! the input's guest folder (`/inputs/NAME`, see
//! [`sluice_job::spec::DataInput`]). The folder is made again on every run;
//! the job's manifest holds each file's size and modification time, so a
//! resume over a changed file is refused rather than mixing old and new.

use std::path::{Path, PathBuf};

use sluice_job::JobSpec;
use sluice_job::spec::Mount;

use crate::RunError;

/// Makes the folder of each file data input of `spec` under `dir` and adds
/// its mount to `spec.mounts`.
pub(crate) fn grant_files(spec: &mut JobSpec, dir: &Path) -> Result<(), RunError> {
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::JobDir { path, source }
    };
    for d in &spec.data_inputs {
        let Some(file_name) = d.file_name() else { continue };
        let folder = dir.join(&d.name);
        match std::fs::remove_dir_all(&folder) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&folder)(e)),
        }
        std::fs::create_dir_all(&folder).map_err(at(&folder))?;
        let target: PathBuf = folder.join(file_name);
        // A link's target, not the link: a hard link to a symbolic link
        // would point the guest outside its folder (DVC and git-annex
        // files are links).
        let real = std::fs::canonicalize(&d.host_path).map_err(at(&d.host_path))?;
        if std::fs::hard_link(&real, &target).is_err() {
            std::fs::copy(&real, &target).map_err(at(&d.host_path))?;
        }
        spec.mounts.push(Mount { guest_path: d.guest_dir(), host_path: folder });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_input_gets_a_folder_holding_only_that_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("data")).unwrap();
        std::fs::write(d.path().join("lookup.csv"), "a,b\n").unwrap();
        std::fs::write(d.path().join("secret.txt"), "sibling").unwrap();
        std::fs::write(d.path().join("s.wasm"), b"\0asm").unwrap();
        let text = "inputs:\n  data: {type: uri_folder, path: ./data}\n  lookup: {type: uri_file, path: ./lookup.csv}\n\
                    input_data: ${{inputs.data}}\ntask:\n  code: ./s.wasm\n";
        let mut spec = JobSpec::from_yaml(text, "job.yaml", d.path(), &[]).unwrap();
        // Through a symbolic link, the guest still gets the file itself.
        std::os::unix::fs::symlink(d.path().join("lookup.csv"), d.path().join("link.csv")).unwrap();
        let mut linked = spec.clone();
        linked.data_inputs[0].host_path = d.path().join("link.csv");
        grant_files(&mut linked, &d.path().join("linked")).unwrap();
        let got = d.path().join("linked/lookup/link.csv");
        assert!(!std::fs::symlink_metadata(&got).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(got).unwrap(), "a,b\n");
        let grants = d.path().join("job/grants");
        // Twice: a resume makes the folder again.
        for _ in 0..2 {
            let mut s = spec.clone();
            grant_files(&mut s, &grants).unwrap();
            let m = s.mounts.last().unwrap();
            assert_eq!((m.guest_path.as_str(), m.host_path.clone()), ("/inputs/lookup", grants.join("lookup")));
            let names: Vec<_> = std::fs::read_dir(&m.host_path).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names, vec![std::ffi::OsString::from("lookup.csv")]);
            assert_eq!(std::fs::read_to_string(m.host_path.join("lookup.csv")).unwrap(), "a,b\n");
        }
        spec.data_inputs.clear();
        let before = spec.mounts.len();
        grant_files(&mut spec, &grants).unwrap();
        assert_eq!(spec.mounts.len(), before);
    }
}
