# syntax=docker/dockerfile:1
# Vexil's container image: one static binary, every role (choose with VEXIL_ROLES).
#
#   docker build -t vexil:dev \
#     --build-arg VERSION=$(git describe --tags --always --dirty) .
#
# Build stage: a static (CGO_ENABLED=0) build of ./services/vexil. deploy/image/image_test.go builds
# the same target the same way and checks this file, since CI has no Docker daemon.
FROM golang:1.26.0-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused while only the source changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# -trimpath: no build paths in the binary. .dockerignore keeps .git out of the context, so there
# is no VCS stamp to read (-buildvcs=false); the image's version is its label below.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false -ldflags "-s -w" \
      -o /out/vexil ./services/vexil

# Final stage: distroless static (CA certificates, tzdata, a passwd with "nonroot"); no shell, so
# the health check is the binary itself (vexil healthcheck).
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="vexil" \
      org.opencontainers.image.description="Event-sourced feature flags and experimentation" \
      org.opencontainers.image.source="https://github.com/vexil-flags/vexil" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/vexil /usr/local/bin/vexil
# Listen on every interface inside the container; the defaults otherwise suit a local start.
ENV VEXIL_HTTP_ADDR=0.0.0.0:8080 \
    VEXIL_LOG_FORMAT=json
EXPOSE 8080
# 65532 is distroless's "nonroot" user: never root, even if the base tag changes.
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/vexil", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/vexil"]
CMD ["serve"]
