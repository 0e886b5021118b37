#!/usr/bin/env node
// The `infergate` command: runs the compiled entry point (npm ci builds it; `npm run build` rebuilds it).
import '../dist/src/main.js';
