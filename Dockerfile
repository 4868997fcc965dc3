# auditship in a container: `auditship run` as a one-shot job (cron, a Kubernetes CronJob, ECS scheduled
# tasks), typically without a persistent disk — give each pipeline a `state:` section and its DuckDB file is
# fetched from S3 before the run and written back after it (docs/configuration.md, "State in S3").
#
#   docker build -t auditship .
#   docker run --rm --read-only --tmpfs /tmp --tmpfs /data:uid=1000,gid=1000 \
#     -v "$PWD/auditship.yaml:/config/auditship.yaml:ro" \
#     -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_SESSION_TOKEN auditship
#
# /data is the working directory: relative paths of the config (`path: ./auditship.duckdb`, spool files,
# DuckDB's temporary files) land there, and it is the only place auditship writes (hence --read-only). A tmpfs
# is mounted owned by root: give it to uid 1000 (docker: uid=1000,gid=1000; podman: `--tmpfs /data:U`;
# Kubernetes: an emptyDir with fsGroup: 1000). Without `state:` mount a volume on /data instead, or every run
# starts from nothing. The config comes from $AUDITSHIP_CONFIG (default /config/auditship.yaml) or
# `--config FILE`; secrets come from the environment (the config's ${VAR}) or the AWS credential chain, never
# from the image.
#
# Base image: Node 22 (LTS until April 2027). Node 20 reached its end of life in April 2026, and the AWS SDK
# v3 releases from early January 2027 on need Node 22; package.json's engines (>=20.11) allows both, and
# `--build-arg NODE_VERSION=20` still builds. Pinned by tag, not digest: digests cannot be looked up where
# this file was written (no access to Docker Hub) — pin one with `node:22-bookworm-slim@sha256:...` when
# building for production. Debian bookworm (glibc 2.36) is what DuckDB's prebuilt binding is tested on here.
ARG NODE_VERSION=22

# Production dependencies only, from the lock file. --ignore-scripts: no dependency needs an install script
# (DuckDB's native binding is a prebuilt optional package, @duckdb/node-bindings-linux-<arch>, chosen by npm
# for the build platform; the only install script in the tree is esbuild's, a dev dependency), and the
# project's own `prepare` (tsc) is run explicitly in the build stage.
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --no-update-notifier

# The TypeScript build (dev dependencies included), dist/ only.
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --no-update-notifier
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# The runtime: what package.json "files" ships (bin, dist, src/ui/static — the web UI's page, served from
# there; auditship.example.yaml is not needed to run) plus package.json (the CLI reads its version) and the
# production node_modules.
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    AUDITSHIP_CONFIG=/config/auditship.yaml
WORKDIR /app
COPY --chown=node:node package.json ./
COPY --chown=node:node bin ./bin
COPY --chown=node:node src/ui/static ./src/ui/static
COPY --from=deps --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
# /data: the working directory, the only place auditship writes (mount a volume or a tmpfs there).
# /config: where the config is mounted (read-only is fine).
RUN install -d -o node -g node -m 0750 /data \
    && install -d -m 0755 /config
WORKDIR /data
# The official image's unprivileged user (uid 1000).
USER node
# No HEALTHCHECK: `auditship run` is a one-shot job whose exit code is its health (0 ok, 1 a pipeline failed,
# 2 configuration). For `run --follow`, probe its metrics endpoint (--metrics HOST:PORT, /metrics) from the
# orchestrator instead.
ENTRYPOINT ["node", "/app/bin/auditship.js"]
CMD ["run"]
