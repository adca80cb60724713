import { host, ComponentError } from './host.mjs';

export function deliverColumns(names) {
  host().delivered = names;
}

export function deliverRowOrigins(deliver) {
  host().rowOrigins = deliver;
}

export function columns() {
  return host().columns;
}

export function nullRows(names) {
  for (const n of names) {
    if (!host().columns.some(([c]) => c === n)) throw new ComponentError({ code: 'unknown-name', message: `no column \`${n}\`` });
  }
  return host().nullRows(names);
}
