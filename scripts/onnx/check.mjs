// Runs an ONNX file that razor exported in onnxruntime (a runtime razor did not write) on the
// inputs razor saved, and compares the outputs with razor's own:
//   node scripts/onnx/check.mjs MODEL.onnx DATA_DIR [--threads N] [--batch B] [--optimized FILE]
// DATA_DIR holds meta.json ({"input_shape": [N, C, H, W], "output_shape": [N, K],
// "output_step": s}), input.f32 and expected.f32 (little-endian float32, row-major) and,
// optionally, labels.i64. Prints one JSON object: for graph optimisation "disabled" (the
// graph as written) and "all" (onnxruntime's fusions and int8 kernels), the largest
// difference, the relative error (largest difference / largest |razor output|), the
// differences in output quantisation steps when s > 0, top-1 of the runtime and of razor
// against the labels, the argmax agreement, and images per second (passes over the images
// repeated for at least a second). --optimized writes onnxruntime's optimised graph there.
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';

function usage(message) {
  if (message) console.error(`check.mjs: ${message}`);
  console.error('usage: node check.mjs MODEL.onnx DATA_DIR [--threads N] [--batch B] [--optimized FILE]');
  process.exit(2);
}

const args = process.argv.slice(2);
const positional = [];
const options = { threads: 1, batch: 64, optimized: null };
for (let i = 0; i < args.length; ++i) {
  if (args[i] === '--optimized') {
    if (i + 1 >= args.length) usage('--optimized needs a file');
    options.optimized = args[++i];
  } else if (args[i] === '--threads' || args[i] === '--batch') {
    const value = Number(args[++i]);
    if (!Number.isInteger(value) || value < 1) usage(`${args[i - 1]} needs a positive integer`);
    options[args[i - 1].slice(2)] = value;
  } else {
    positional.push(args[i]);
  }
}
if (positional.length !== 2) usage();
const [modelPath, dataDir] = positional;
if (!fs.existsSync(modelPath)) usage(`model not found: ${modelPath}`);

function readFloats(file) {
  const bytes = fs.readFileSync(path.join(dataDir, file));
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

const meta = JSON.parse(fs.readFileSync(path.join(dataDir, 'meta.json'), 'utf8'));
const input = readFloats('input.f32');
const expected = readFloats('expected.f32');
const [count, ...sampleShape] = meta.input_shape;
const sampleSize = sampleShape.reduce((a, b) => a * b, 1);
const classes = meta.output_shape[1];
if (input.length !== count * sampleSize) usage(`input.f32 has ${input.length} values, meta.json says ${count * sampleSize}`);
if (expected.length !== count * classes) usage(`expected.f32 has ${expected.length} values, meta.json says ${count * classes}`);
let labels = null;
if (fs.existsSync(path.join(dataDir, 'labels.i64'))) {
  const bytes = fs.readFileSync(path.join(dataDir, 'labels.i64'));
  labels = new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
}

function argmax(values, row) {
  let best = 0;
  for (let k = 1; k < classes; ++k) if (values[row * classes + k] > values[row * classes + best]) best = k;
  return best;
}

async function run(level) {
  const sessionOptions = {
    graphOptimizationLevel: level,
    intraOpNumThreads: options.threads,
    interOpNumThreads: 1,
    executionProviders: ['cpu'],
  };
  if (level === 'all' && options.optimized) sessionOptions.optimizedModelFilePath = options.optimized;
  const session = await ort.InferenceSession.create(modelPath, sessionOptions);
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  const output = new Float32Array(count * classes);
  const runBatch = async (start) => {
    const n = Math.min(options.batch, count - start);
    const feed = new ort.Tensor('float32', input.subarray(start * sampleSize, (start + n) * sampleSize), [n, ...sampleShape]);
    const result = await session.run({ [inputName]: feed });
    output.set(result[outputName].data, start * classes);
  };
  await runBatch(0);  // warm-up: the first run allocates
  const begin = process.hrtime.bigint();
  let seconds = 0, passes = 0;
  while (passes === 0 || seconds < 1) {
    for (let start = 0; start < count; start += options.batch) await runBatch(start);
    ++passes;
    seconds = Number(process.hrtime.bigint() - begin) / 1e9;
  }

  let maxDiff = 0, maxExpected = 0, withinStep = 0, maxSteps = 0, agree = 0, correct = 0;
  const step = meta.output_step || 0;
  for (let i = 0; i < expected.length; ++i) {
    const diff = Math.abs(output[i] - expected[i]);
    maxDiff = Math.max(maxDiff, diff);
    maxExpected = Math.max(maxExpected, Math.abs(expected[i]));
    if (step > 0) {
      const steps = diff / step;
      maxSteps = Math.max(maxSteps, steps);
      if (steps <= 1 + 1e-3) ++withinStep;
    }
  }
  for (let row = 0; row < count; ++row) {
    const top = argmax(output, row);
    if (top === argmax(expected, row)) ++agree;
    if (labels && BigInt(top) === labels[row]) ++correct;
  }
  const report = {
    max_abs_diff: maxDiff,
    relative_error: maxExpected > 0 ? maxDiff / maxExpected : maxDiff,
    argmax_agreement: agree / count,
    images_per_s: (count * passes) / seconds,
  };
  if (step > 0) {
    report.within_one_step = withinStep / expected.length;
    report.max_steps = maxSteps;
  }
  if (labels) report.top1 = (100 * correct) / count;
  return report;
}

let razorCorrect = 0;
if (labels) for (let row = 0; row < count; ++row) if (BigInt(argmax(expected, row)) === labels[row]) ++razorCorrect;

try {
  const report = {
    model: modelPath,
    onnxruntime: ort.env.versions.node,
    images: count,
    threads: options.threads,
    batch: options.batch,
    output_step: meta.output_step || 0,
    disabled: await run('disabled'),
    all: await run('all'),
  };
  if (labels) report.razor_top1 = (100 * razorCorrect) / count;
  console.log(JSON.stringify(report));
} catch (error) {
  console.error(`check.mjs: onnxruntime cannot run ${modelPath}: ${error.message}`);
  process.exit(1);
}
