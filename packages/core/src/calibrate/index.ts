// Calibration: the tensors each attention site sees on calibration inputs (files or generated).
export { type CalibrationSample, type HostData, type HostTensor, CalibrationInputError, checkCalibrationTensor, hostToFloat64 } from './tensor.js';
export { encodeNpy, readNpy } from './npy.js';
export { readTensorProto, type NamedHostTensor } from './tensor-proto.js';
export { calibrationSet, calibrationSampleDirs, readSampleDir, checkSample } from './folder.js';
export { generateInputs, type GenerateOptions, isPastDim } from './generate.js';
export { gatherBound } from './tables.js';
export { modelInputs, type ModelInput } from './model-inputs.js';
export { collectSiteTensors, siteTensorStream, calibrationModel, checkRuntime, RUNTIMES, type CalibrationModel, type CollectOptions, type Runtime } from './collect.js';
export { type SiteSample, type SiteSamples, type SiteTensor, type SiteDimsSeen, siteDimsOf } from './site-samples.js';
