import { MockBackend } from './mock/mock-backend.js';
import { OnnxBackend } from './onnx/onnx-backend.js';
import { OpenAIBackend } from './openai/openai-backend.js';
export function createBackend(config, context) {
    switch (config.kind) {
        case 'onnx':
            return new OnnxBackend(config, context.onBatch);
        case 'openai':
            return new OpenAIBackend(config, context.modelName);
        case 'mock':
            return new MockBackend(config);
    }
}
//# sourceMappingURL=index.js.map