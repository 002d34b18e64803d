# nightshift on Node 24 LTS. Build: docker build -t nightshift .
# Run:   docker run -d --restart unless-stopped --env-file .env -v nightshift-data:/data \
#          --security-opt seccomp=unconfined --security-opt apparmor=unconfined nightshift
# (bubblewrap needs user namespaces, which Docker's default profiles forbid; without them
# every build fails, as agent commands never run unconfined unless NIGHTSHIFT_SANDBOX=never.)

FROM node:24-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles from source when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
# git clones and pushes the target repos; bubblewrap confines the agents' commands.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates bubblewrap tini fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown node:node /data
ENV NODE_ENV=production \
    DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY prompts ./prompts
USER node
VOLUME ["/data"]
# tini forwards SIGTERM so `docker stop` triggers the graceful stop, and reaps child processes.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/main.js"]
