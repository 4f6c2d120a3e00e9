# Multi-stage build of the jenkins-cloud daemon; runs as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p jenkins-cloud --bin jenkins-cloud \
 && cp target/release/jenkins-cloud /jenkins-cloud

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home jenkins-cloud
COPY --from=build /jenkins-cloud /usr/local/bin/jenkins-cloud
USER 10001
EXPOSE 9184
ENTRYPOINT ["/usr/local/bin/jenkins-cloud", "--config", "/etc/jenkins-cloud/config.yaml", "--log-format", "json"]
CMD ["run"]
