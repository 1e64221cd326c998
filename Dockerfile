# The loan service's production image.
#
#   docker build -t loan-service .                   (BuildKit: Docker ≥ 23, docker buildx, Dagger, buildah)
#   docker build --secret id=npm_ca,src=/path/to/proxy-ca.pem -t loan-service .
#       behind a TLS-intercepting proxy: an extra CA (PEM) for npm, mounted only while npm runs — it never
#       reaches a layer of any stage.
#   docker build --build-arg NODE_IMAGE=<other base> …  the base image (tests use a locally built stand-in).
#
# Stages: prod-deps (production dependencies only) and build (all dependencies, compiles TypeScript) share the
# npm cache mount; the runtime stage copies node_modules from the first and dist/ from the second, and runs as
# the unprivileged `node` user under tini. The build needs BuildKit's `RUN --mount` (the legacy builder lacks it).

ARG NODE_IMAGE=node:24.21.0-bookworm-slim

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --omit=dev --no-audit --no-fund --loglevel=warn

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Everything tsc needs; optional (platform binary) packages and install scripts are not.
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=warn
COPY tsconfig.json tsconfig.build.json ./
COPY service ./service
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
# tini as PID 1 forwards signals to node and reaps zombies; node, not npm, is the process (npm swallows
# SIGTERM). npm, npx, corepack and yarn are not needed at run time: removed, they are neither attack
# surface nor scanner findings.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /opt/yarn-* \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg
# NODE_OPTIONS: the heap bound that ships (compose and the k8s overlays set their own per environment). Unbounded,
# V8 sizes the heap from the machine and lets garbage accumulate (160-237 MiB RSS per process under load). The old
# space is bounded, and so is the young generation: for the same old-space bound this image's Node sizes a young
# generation of 192 MiB (Node 20: 48), which alone put RSS at 216-223 MiB; three 16 MiB semi-spaces keep it at
# Node 20's 48 MiB on every Node version (bench/RESULTS.md).
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-old-space-size=384 --max-semi-space-size=16" \
    HOST=0.0.0.0 \
    PORT=8000 \
    MIGRATE_ON_START=true
WORKDIR /app
# Owned by root and read-only for the `node` user: the process cannot rewrite its own code.
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
# 8000: the API. 9464: Prometheus /metrics, on 127.0.0.1 unless METRICS_HOST says otherwise (compose: 0.0.0.0
# on the internal network); METRICS_PORT=0 turns it off.
EXPOSE 8000 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["node", "dist/src/healthcheck.js"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/server.js"]
