# HealthTwin node and twinctl on Debian 12, in two stages: the build, then a
# runtime image with only the shared libraries the binaries load, run as a
# non-root user (uid 10001) on a read-only root filesystem (the Helm chart
# mounts /var/lib/healthtwin and /tmp).
#
#   podman build -t healthtwin:dev .
#   podman build -t healthtwin:dev --build-arg BASE=localhost/healthtwin-base:bookworm .
#
# BASE is Debian 12; without a registry, tests/container/image_test.sh makes
# one from the Debian archive with debootstrap.
ARG BASE=docker.io/library/debian:12-slim

FROM ${BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      build-essential cmake pkg-config ca-certificates \
      libcaf-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      librocksdb-dev prometheus-cpp-dev libssl-dev libcli11-dev nlohmann-json3-dev \
      libspdlog-dev libfmt-dev libxxhash-dev libzstd-dev libgoogle-perftools-dev libjwt-dev \
      libboost-dev libcurl4-openssl-dev libmosquitto-dev libgtest-dev libgmock-dev libbenchmark-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEALTHTWIN_BUILD_TESTS=OFF \
      -DHEALTHTWIN_BUILD_BENCH=OFF \
 && cmake --build /build -j"$(nproc)" --target healthtwin twinctl \
 && strip --strip-debug /build/services/node/healthtwin /build/services/twinctl/twinctl

FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      ca-certificates libcaf-core0.17 libgrpc++1.51 libprotobuf32 libprometheus-cpp-core1.0 \
      libspdlog1.10 libfmt9 libssl3 libcurl4 libjwt0 libtcmalloc-minimal4 \
      libsnappy1v5 liblz4-1 libzstd1 libbz2-1.0 zlib1g libxxhash0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/healthtwin --shell /usr/sbin/nologin healthtwin \
 && install -d -o healthtwin -g healthtwin -m 0700 /var/lib/healthtwin
COPY --from=build /build/services/node/healthtwin /build/services/twinctl/twinctl /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/healthtwin
EXPOSE 50051 8080 7000
ENTRYPOINT ["/usr/local/bin/healthtwin"]
CMD ["--help"]
