FROM node:20-bookworm

# Toolchain for mediasoup 3.8.4's worker, which npm ci compiles from the vendored
# sources (see scripts/npm-script-shell.sh). Already in this image; listed so the
# requirement is explicit if the base image changes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first: the ~5 minute worker build stays cached until the lockfile changes.
# .npmrc points npm at scripts/npm-script-shell.sh, which sets the offline build settings.
COPY package.json package-lock.json .npmrc ./
COPY scripts ./scripts
RUN npm ci

COPY . .
# The browser app (React, Vite and mediasoup-client are devDependencies: the image keeps them).
RUN npm run build:web

# Where PostgreSQL and Redis live is the deployment's business (docker-compose.yml sets them);
# without DATABASE_URL the hub falls back to embedded PGlite.
ENV PORT=8080

EXPOSE 8080 40000-40100/udp 40000-40100/tcp
CMD ["npx", "tsx", "server/main.ts"]
