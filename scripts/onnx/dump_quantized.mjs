// Runs a QDQ file in onnxruntime with graph optimisation off and writes the integer output of
// every QuantizeLinear, for scripts/onnx/locate-differences:
//   node dump_quantized.mjs MODEL.onnx NAMES_FILE DATA_DIR FIRST LAST OUT_DIR
// MODEL.onnx lists the QuantizeLinear outputs among its graph outputs (NAMES_FILE, one per
// line); DATA_DIR is a --verify check folder (meta.json, input.f32). Writes OUT_DIR/K.bin
// (uint8/int8, row-major) for the K-th name, images FIRST..LAST-1.
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';

const [model, namesFile, dataDir, first, last, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error('usage: node dump_quantized.mjs MODEL.onnx NAMES_FILE DATA_DIR FIRST LAST OUT_DIR');
  process.exit(2);
}
const meta = JSON.parse(fs.readFileSync(path.join(dataDir, 'meta.json'), 'utf8'));
const [, ...sampleShape] = meta.input_shape;
const sampleSize = sampleShape.reduce((a, b) => a * b, 1);
const bytes = fs.readFileSync(path.join(dataDir, 'input.f32'));
const all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
const a = Number(first), b = Number(last);
const input = new ort.Tensor('float32', all.slice(a * sampleSize, b * sampleSize), [b - a, ...sampleShape]);
const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 2 });
const result = await session.run({ input });
fs.mkdirSync(outDir, { recursive: true });
const names = fs.readFileSync(namesFile, 'utf8').split('\n').filter((n) => n);
names.forEach((name, k) => {
  const data = result[name].data;
  fs.writeFileSync(path.join(outDir, `${k}.bin`), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
});
