# syntax=docker/dockerfile:1
#
# The Gatehouse hub. Configure it with GATEHOUSE_* environment variables
# (see `gateway-server init`), or mount a config file and pass
# `--config /etc/gatehouse/gatehouse.toml`.
#
#   docker build -t gatehouse/gateway-server .
#   docker run -p 3200:3200 -v gatehouse:/var/lib/gatehouse gatehouse/gateway-server

# The dashboard, built once with its locked packages; the hub embeds it.
FROM node:22-bookworm-slim AS dashboard
WORKDIR /src/dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY dashboard/ ./
RUN npm run build

# The builder matches the runtime's Debian release so the binary's glibc
# requirement is met.
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
COPY --from=dashboard /src/dashboard/dist dashboard/dist
# The dashboard is built above: build.rs embeds it as it is.
ENV GATEHOUSE_DASHBOARD_BUILD=skip
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gateway-server \
    && install -m 0755 target/release/gateway-server /usr/local/bin/gateway-server

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/gatehouse --create-home gatehouse
COPY --from=builder /usr/local/bin/gateway-server /usr/local/bin/gateway-server

USER gatehouse
WORKDIR /var/lib/gatehouse
ENV GATEHOUSE_SERVER_LISTEN=0.0.0.0:3200 \
    GATEHOUSE_DATABASE_URL=sqlite:///var/lib/gatehouse/gatehouse.db
# The SQLite store (the default) lives here; unused with PostgreSQL.
VOLUME ["/var/lib/gatehouse"]
EXPOSE 3200
ENTRYPOINT ["gateway-server"]
CMD ["serve"]
