# syntax=docker/dockerfile:1
# infergate's container image (README: Deploying). CPU by default:
#   docker build -t infergate .
#   docker run -p 8080:8080 -p 8081:8081 infergate
# Behind a TLS-intercepting proxy, hand the build its CA bundle (never stored in a layer):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t infergate .
# CUDA (node-llama-cpp's CUDA binaries, onnxruntime-node's CUDA provider), on a base of your own
# with NVIDIA's CUDA 12 runtime, cuDNN 9 and Node.js 20.19+ as `nodejs` (README: Deploying):
#   docker build --build-arg GPU=cuda --build-arg BASE=my-cuda-node20 -t infergate:cuda .

# Any Debian-like image with Node.js 20.19+ as `nodejs` in its archive: Debian 13 (trixie) has it.
ARG BASE=debian:trixie-slim

# --- build: compiles TypeScript and the native modules (better-sqlite3) with the build tools
FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nodejs npm libnode-dev python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# node-gyp builds against the system's Node headers (libnode-dev), never downloads them.
ENV npm_config_nodedir=/usr npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
# none (CPU) or cuda: which accelerator's binaries the image keeps.
ARG GPU=none
COPY package.json package-lock.json ./
# Dependencies first, in their own layer: a source change does not fetch them again. The CA
# bundle, if given, is read only here, where packages are fetched; the npm cache is a cache mount.
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.npm,sharing=locked \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi; \
    if [ "$GPU" = cuda ]; then export ONNXRUNTIME_NODE_INSTALL=cuda12; else export ONNXRUNTIME_NODE_INSTALL=skip; fi; \
    npm pkg delete scripts.prepare; \
    npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src src
RUN npx tsc -p tsconfig.json
# Only what runs: production dependencies, this platform's binaries (and CUDA's with GPU=cuda);
# not the sources native modules were built from, nor TypeScript (an optional peer of
# node-llama-cpp that only its CLI loads).
RUN set -eu; \
    npm prune --omit=dev --no-audit --no-fund; \
    case "$(dpkg --print-architecture)" in amd64) arch=x64 ;; arm64) arch=arm64 ;; armhf) arch=armv7l ;; *) arch=none ;; esac; \
    for d in node_modules/@node-llama-cpp/*; do \
      case "${d##*/}" in "linux-$arch") ;; "linux-$arch-cuda"|"linux-$arch-cuda-ext") [ "$GPU" = cuda ] || rm -rf "$d" ;; *) rm -rf "$d" ;; esac; \
    done; \
    ort=node_modules/onnxruntime-node/bin/napi-v6; \
    find "$ort" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +; \
    find "$ort/linux" -mindepth 1 -maxdepth 1 ! -name "$arch" -exec rm -rf {} +; \
    rm -rf node_modules/node-llama-cpp/llama/gitRelease.bundle node_modules/node-llama-cpp/llama/llama.cpp \
      node_modules/better-sqlite3/deps node_modules/better-sqlite3/src node_modules/better-sqlite3/build/Release/obj* \
      node_modules/better-sqlite3/build/Release/.deps node_modules/better-sqlite3/build/deps \
      node_modules/typescript; \
    find node_modules \( -name '*.md' -o -name '*.ts' -o -name '*.map' \) -type f -delete

# --- runtime: Node.js, tini and the app; no compiler, no npm, no cache
FROM ${BASE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log /usr/share/doc/* /usr/share/man/* \
 && groupadd --gid 10001 infergate \
 && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /var/lib/infergate --no-create-home --shell /usr/sbin/nologin infergate \
 && install -d -o 10001 -g 10001 /var/lib/infergate \
 && install -d /etc/infergate
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist/src dist/src
COPY bin bin
COPY proto proto
COPY models models
COPY config config
# The dashboard's static files (served at /ui; its chart library, uPlot, is in node_modules).
COPY ui ui
COPY config/infergate.schema.json /etc/infergate/infergate.schema.json
COPY deploy/image/config.yaml /etc/infergate/config.yaml

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="infergate" \
      org.opencontainers.image.description="Model-serving backend and gateway: OpenAI, Anthropic and KServe v2 APIs over ONNX Runtime, llama.cpp and remote model servers" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/infergate/infergate" \
      org.opencontainers.image.documentation="https://github.com/infergate/infergate#deploying"

# The config folder (mount a config.yaml, or a Kubernetes ConfigMap, here) and the data folder
# (the SQLite file without PostgreSQL); the image's config lives in the first.
VOLUME ["/etc/infergate", "/var/lib/infergate"]
ENV NODE_ENV=production INFERGATE_CONFIG=/etc/infergate/config.yaml
USER 10001:10001
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# tini is PID 1: it passes SIGTERM on to the server, which drains (README: The command line), and reaps.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/infergate.js"]
CMD ["serve"]
