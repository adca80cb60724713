//! `${{inputs.NAME}}` and `${{outputs.NAME}}` in `task.program_arguments`,
//! `task.config` and `environment_variables` values, resolved as Azure ML
//! resolves them before a job starts: a literal input becomes its value, a
//! data input the path the guest sees it at. In `program_arguments` an
//! optional segment `$[[ ... ]]` is kept (without its brackets) only when
//! every `${{inputs.X}}` inside it has a value, and dropped whole otherwise,
//! so `$[[--limit ${{inputs.limit}}]]` disappears when the optional `limit`
//! is not given. Everything is resolved from the spec alone, so a resume
//! (which validates the stored spec again) resolves the same text.

use std::collections::BTreeMap;

use super::did_you_mean;

/// What one `${{inputs.X}}` or `${{outputs.X}}` resolves to.
#[derive(Debug, Clone)]
pub enum Binding {
    /// This text.
    Value(String),
    /// An optional input without a value.
    Missing,
    /// It cannot be used here; the text says why and what to do.
    Refused(String),
}

/// The inputs and outputs of a spec, by name.
#[derive(Debug, Default)]
pub struct Bindings {
    /// `inputs.NAME`.
    pub inputs: BTreeMap<String, Binding>,
    /// `outputs.NAME`.
    pub outputs: BTreeMap<String, Binding>,
}

/// Refuses a substituted value past [`MAX_SUBSTITUTED_BYTES`].
fn within_bound(out: &str) -> Result<(), String> {
    if out.len() > MAX_SUBSTITUTED_BYTES {
        return Err(format!(
            "substituting the inputs makes this value longer than {} KiB, the most one may be",
            MAX_SUBSTITUTED_BYTES >> 10
        ));
    }
    Ok(())
}

/// The longest value substitution may make (a program-arguments string, a
/// `task.config` or environment value): a spec's own size.
pub const MAX_SUBSTITUTED_BYTES: usize = super::MAX_SPEC_BYTES;

impl Bindings {
    /// `text` with every `${{...}}` resolved; `$[[...]]` segments are
    /// understood when `optional_segments` (program arguments) and left as
    /// they are otherwise.
    pub fn substitute(&self, text: &str, optional_segments: bool) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        loop {
            // Each `${{...}}` adds its whole value: a spec of 1 MiB could
            // otherwise ask for gigabytes (a long value used many times).
            within_bound(&out)?;
            let expr = rest.find("${{");
            let segment = if optional_segments { rest.find("$[[") } else { None };
            // Whichever comes first: an expression or an optional segment.
            let first = match (expr, segment) {
                (Some(e), Some(s)) if s < e => Some((s, true)),
                (Some(e), _) => Some((e, false)),
                (None, Some(s)) => Some((s, true)),
                (None, None) => None,
            };
            match first {
                None => {
                    out.push_str(rest);
                    return Ok(out);
                }
                Some((e, false)) => {
                    out.push_str(&rest[..e]);
                    let (b, after) = self.expression(&rest[e..])?;
                    match b {
                        Binding::Value(v) => out.push_str(&v),
                        Binding::Missing => {
                            return Err(format!(
                                "`{}` is optional and has no value: put it inside an optional segment \
                                 `$[[ ... ]]` (dropped when it has no value), or give it a value \
                                 (`--set {}.value=VALUE`, or `path:` for a data input)",
                                &rest[e..rest.len() - after.len()],
                                expr_name(&rest[e..rest.len() - after.len()]),
                            ));
                        }
                        Binding::Refused(why) => return Err(why),
                    }
                    rest = after;
                }
                Some((s, true)) => {
                    out.push_str(&rest[..s]);
                    let body = &rest[s + 3..];
                    let end = body
                        .find("]]")
                        .ok_or_else(|| format!("the optional segment `{}` is not closed by `]]`", cut(&rest[s..])))?;
                    let inner = &body[..end];
                    if inner.contains("$[[") {
                        return Err(format!("`{}`: optional segments cannot be nested", cut(&rest[s..])));
                    }
                    let (text, complete) = self.segment(inner)?;
                    if complete {
                        out.push_str(&text);
                    }
                    rest = &body[end + 2..];
                }
            }
        }
    }

    /// An optional segment's text, and whether every input in it has a value.
    fn segment(&self, inner: &str) -> Result<(String, bool), String> {
        let mut out = String::new();
        let mut complete = true;
        let mut rest = inner;
        while let Some(e) = rest.find("${{") {
            within_bound(&out)?;
            out.push_str(&rest[..e]);
            let (b, after) = self.expression(&rest[e..])?;
            match b {
                Binding::Value(v) => out.push_str(&v),
                Binding::Missing => complete = false,
                Binding::Refused(why) => return Err(why),
            }
            rest = after;
        }
        out.push_str(rest);
        Ok((out, complete))
    }

    /// Resolves the `${{...}}` at the start of `text`; returns it and what
    /// follows.
    fn expression<'t>(&self, text: &'t str) -> Result<(Binding, &'t str), String> {
        let body = &text[3..];
        let end = body.find("}}").ok_or_else(|| format!("`{}` is not closed by `}}}}`", cut(text)))?;
        let expr = body[..end].trim();
        let after = &body[end + 2..];
        let (space, name) = expr.split_once('.').unwrap_or((expr, ""));
        let table = match space {
            "inputs" => &self.inputs,
            "outputs" => &self.outputs,
            "parent" => {
                return Err(format!(
                    "`${{{{{expr}}}}}`: `parent` bindings belong to a pipeline job's steps; this version runs \
                     one `type: parallel` job: give the value or path here"
                ));
            }
            _ => {
                return Err(format!("`${{{{{expr}}}}}`: expected `${{{{inputs.NAME}}}}` or `${{{{outputs.NAME}}}}`"));
            }
        };
        match table.get(name) {
            Some(b) => Ok((b.clone(), after)),
            None => {
                let known: Vec<&str> = table.keys().map(String::as_str).collect();
                let hint = match did_you_mean(name, &known) {
                    Some(k) => format!(": did you mean `{space}.{k}`?"),
                    None if known.is_empty() => format!(" (the spec has no {space})"),
                    None => format!(" ({space}: {})", known.join(", ")),
                };
                Err(format!("`${{{{{expr}}}}}` names no {}{hint}", &space[..space.len() - 1]))
            }
        }
    }
}

/// `${{inputs.x}}` -> `inputs.x`.
fn expr_name(e: &str) -> &str {
    e.trim_start_matches("${{").trim_end_matches("}}").trim()
}

/// The first 40 characters of `s`, for messages.
fn cut(s: &str) -> String {
    let t: String = s.chars().take(40).collect();
    if t.len() < s.len() { format!("{t}...") } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings() -> Bindings {
        let mut b = Bindings::default();
        b.inputs.insert("model".into(), Binding::Value("/inputs/model".into()));
        b.inputs.insert("cols".into(), Binding::Value("a,b".into()));
        b.inputs.insert("limit".into(), Binding::Missing);
        b.outputs.insert("out".into(), Binding::Refused("outputs.out: not writable".into()));
        b
    }

    #[test]
    fn substitution_stops_at_a_specs_size() {
        let mut b = bindings();
        b.inputs.insert("big".into(), Binding::Value("x".repeat(100_000)));
        let many = "${{inputs.big}} ".repeat(30);
        let e = b.substitute(&many, true).unwrap_err();
        assert!(e.contains("longer than 1024 KiB"), "{e}");
        let e = b.substitute(&format!("$[[{many}]]"), true).unwrap_err();
        assert!(e.contains("longer than 1024 KiB"), "{e}");
        assert_eq!(b.substitute(&"${{inputs.big}}".repeat(3), true).unwrap().len(), 300_000);
    }

    #[test]
    fn values_and_paths_are_substituted() {
        let b = bindings();
        assert_eq!(
            b.substitute("--model ${{inputs.model}} --cols ${{ inputs.cols }}", true).unwrap(),
            "--model /inputs/model --cols a,b"
        );
        // Text around and without expressions is kept as written.
        assert_eq!(b.substitute("plain $x {{y}}", true).unwrap(), "plain $x {{y}}");
    }

    #[test]
    fn optional_segments_are_kept_only_when_complete() {
        let b = bindings();
        assert_eq!(
            b.substitute("--a 1 $[[--limit ${{inputs.limit}}]] $[[--cols ${{inputs.cols}}]]", true).unwrap(),
            "--a 1  --cols a,b"
        );
        // A segment with one missing input among several is dropped whole.
        assert_eq!(b.substitute("x$[[ ${{inputs.cols}} ${{inputs.limit}}]]y", true).unwrap(), "xy");
        // Outside program arguments `$[[` is plain text and a missing value is an error.
        let e = b.substitute("$[[${{inputs.limit}}]]", false).unwrap_err();
        assert!(e.contains("is optional and has no value") && e.contains("$[[ ... ]]"), "{e}");
        let e = b.substitute("--limit ${{inputs.limit}}", true).unwrap_err();
        assert!(e.contains("`${{inputs.limit}}` is optional"), "{e}");
        assert!(e.contains("--set inputs.limit.value"), "{e}");
        assert!(b.substitute("$[[ --x", true).unwrap_err().contains("not closed by `]]`"));
        assert!(b.substitute("$[[ $[[ ]] ]]", true).unwrap_err().contains("cannot be nested"));
    }

    #[test]
    fn unknown_names_get_a_hint_and_refusals_say_why() {
        let b = bindings();
        let e = b.substitute("--m ${{inputs.modle}}", true).unwrap_err();
        assert_eq!(e, "`${{inputs.modle}}` names no input: did you mean `inputs.model`?");
        // Even inside an optional segment an unknown name is an error.
        let e = b.substitute("$[[--x ${{inputs.nope}}]]", true).unwrap_err();
        assert!(e.contains("names no input (inputs: cols, limit, model)"), "{e}");
        assert_eq!(b.substitute("${{outputs.out}}", true).unwrap_err(), "outputs.out: not writable");
        assert!(b.substitute("${{parent.jobs.a.outputs.b}}", true).unwrap_err().contains("pipeline"));
        assert!(b.substitute("${{name}}", true).unwrap_err().contains("expected `${{inputs.NAME}}`"));
        assert!(b.substitute("${{inputs.model", true).unwrap_err().contains("not closed"));
    }
}
