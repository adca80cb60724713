// `node --import ./test/register.mjs --test`: outside a component there are
// no `sluice:scorer/...` modules, so this loader hook maps them to fakes
// (test/fake/*.mjs) driven by `globalThis.sluiceFakeHost`.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
