export { type GeneratedFile, type GenerateOptions, generate, outputPath } from './generate.js';
