let loading = null;
export function loadOrt() {
    // A CommonJS package: its exports arrive as the ES module's default export.
    loading ??= import('onnxruntime-node').then((m) => m.default);
    return loading;
}
//# sourceMappingURL=runtime.js.map