const TOKEN = /[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu;
export function createTokenizer(config) {
    const buckets = config.vocab_size - 1;
    return function tokenize(text) {
        const ids = [];
        for (const match of text.toLowerCase().matchAll(TOKEN))
            ids.push(1 + (fnv1a(match[0]) % buckets));
        return ids;
    };
}
function fnv1a(s) {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) {
        h ^= s.charCodeAt(i);
        h = Math.imul(h, 0x01000193);
    }
    return h >>> 0;
}
//# sourceMappingURL=tokenizer.js.map