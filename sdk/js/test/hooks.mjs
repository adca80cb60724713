const FAKES = {
  'sluice:scorer/log@0.1.3': './fake/log.mjs',
  'sluice:scorer/onnx@0.1.3': './fake/onnx.mjs',
  'sluice:scorer/batch@0.1.3': './fake/batch.mjs',
};

export async function resolve(specifier, context, next) {
  if (specifier in FAKES) return { url: new URL(FAKES[specifier], import.meta.url).href, shortCircuit: true };
  return next(specifier, context);
}
