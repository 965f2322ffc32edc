# pgbridge container image: build with the Swift toolchain, run on slim Debian with the C
# client libraries (libpq, librdkafka, rabbitmq-c, hiredis) and nothing else.
#
#   docker build -t pgbridge .
#   docker run --rm -v "$PWD/deploy/pgbridge.yaml:/etc/pgbridge/pgbridge.yaml:ro" pgbridge

FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev librdkafka-dev librabbitmq-dev libhiredis-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first: this layer is reused while only the sources change.
COPY Package.swift ./
RUN swift package resolve
# SwiftPM checks every target of Package.swift, the test targets included.
COPY Sources ./Sources
COPY Tests ./Tests
COPY sql ./sql
RUN swift build -c release --product pgbridge --static-swift-stdlib \
    && install -D "$(swift build -c release --show-bin-path)/pgbridge" /out/pgbridge

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 librdkafka1 librabbitmq4 libhiredis0.14 ca-certificates tzdata curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/pgbridge --create-home pgbridge
COPY --from=build /out/pgbridge /usr/local/bin/pgbridge
COPY --from=build /src/sql /usr/share/pgbridge/sql
USER pgbridge
WORKDIR /var/lib/pgbridge
# 8080: HTTP API (health, metrics, pipes, REST proxy); 6433: wire protocol for postgres_fdw.
EXPOSE 8080 6433
ENTRYPOINT ["/usr/local/bin/pgbridge"]
CMD ["run", "--config", "/etc/pgbridge/pgbridge.yaml"]
