# Flowgate: build once, run anywhere with a shell-less slim base.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# jemalloc (the binary's allocator) is built from C with make.
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY static ./static
COPY benches ./benches
RUN cargo build --release --locked --bin flowgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /data flowgate \
 && mkdir -p /data && chown flowgate /data
COPY --from=build /src/target/release/flowgate /usr/local/bin/flowgate
USER flowgate
ENV FLOWGATE_LISTEN=0.0.0.0:8080 \
    FLOWGATE_DATA_DIR=/data
EXPOSE 8080
ENTRYPOINT ["flowgate"]
CMD ["serve"]
