#!/bin/bash
# jenkins-cloud default EC2 user data: runs a Jenkins inbound agent as a systemd
# service. Every placeholder in double braces expands to single-quoted shell words.
set -euo pipefail
umask 077
mkdir -p /etc/jenkins-cloud /var/lib/jenkins-cloud
# The agent user must reach the secret file (0640) and agent.jar; agent.conf stays 0600.
chmod 755 /etc/jenkins-cloud /var/lib/jenkins-cloud

# Settings for the start script; %q keeps every value one shell word.
{
  printf 'JENKINS_URL=%q\n' {{jenkins_url}}
  printf 'AGENT_NAME=%q\n' {{agent_name}}
  printf 'WORK_DIR=%q\n' {{work_dir}}
  printf 'SECRET_MODE=%q\n' {{secret_mode}}
  printf 'SECRET_PARAMETER=%q\n' {{secret_parameter}}
  printf 'AWS_REGION=%q\n' {{region}}
  printf 'AGENT_TAG_KEY=%q\n' {{agent_tag_key}}
  printf 'PARAMETER_TAG_KEY=%q\n' {{parameter_tag_key}}
  printf 'TRANSPORT_ARGS=('
  for arg in {{transport_args}}; do printf '%q ' "$arg"; done
  printf ')\n'
  for kv in {{environment}}; do printf 'export %q\n' "$kv"; done
} > /etc/jenkins-cloud/agent.conf

# Only in secret_delivery "user_data" mode does this write anything.
inline_secret={{secret}}
if [ -n "$inline_secret" ]; then
  printf '%s' "$inline_secret" > /etc/jenkins-cloud/secret
fi
unset inline_secret

install_pkg() {
  if command -v dnf >/dev/null 2>&1; then dnf install -y "$@"
  elif command -v yum >/dev/null 2>&1; then yum install -y "$@"
  elif command -v apt-get >/dev/null 2>&1; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
  else return 1
  fi
}

if ! command -v java >/dev/null 2>&1; then
  install_pkg java-21-amazon-corretto-headless \
    || install_pkg openjdk-21-jre-headless \
    || install_pkg java-17-amazon-corretto-headless \
    || install_pkg openjdk-17-jre-headless
fi
command -v curl >/dev/null 2>&1 || install_pkg curl
if [ {{secret_mode}} = ssm ] && ! command -v aws >/dev/null 2>&1; then
  install_pkg awscli-2 || install_pkg awscli
fi

id jenkins >/dev/null 2>&1 || useradd --create-home --shell /bin/bash jenkins
if getent group docker >/dev/null 2>&1; then usermod -aG docker jenkins; fi

cat > /usr/local/bin/jenkins-cloud-agent <<'AGENT'
#!/bin/bash
# Started by systemd on every boot: reads the agent's identity, fetches the
# secret and agent.jar, and runs the inbound agent.
set -euo pipefail
umask 077
. /etc/jenkins-cloud/agent.conf

imds() {
  local token
  token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300') || return 1
  curl -sf -H "X-aws-ec2-metadata-token: $token" \
    "http://169.254.169.254/latest/meta-data/$1"
}

# A warm-pool instance is restarted for a new agent: its name and secret
# parameter come from the instance tags, which the backend rewrites first.
if tag=$(imds "tags/instance/$AGENT_TAG_KEY") && [ -n "$tag" ]; then AGENT_NAME=$tag; fi
if [ "$SECRET_MODE" = ssm ]; then
  if tag=$(imds "tags/instance/$PARAMETER_TAG_KEY") && [ -n "$tag" ]; then SECRET_PARAMETER=$tag; fi
  aws ssm get-parameter --region "$AWS_REGION" --with-decryption \
    --name "$SECRET_PARAMETER" --query Parameter.Value --output text \
    > /etc/jenkins-cloud/secret.new
  mv /etc/jenkins-cloud/secret.new /etc/jenkins-cloud/secret
fi
chgrp jenkins /etc/jenkins-cloud/secret
chmod 640 /etc/jenkins-cloud/secret

mkdir -p "$WORK_DIR"
chown jenkins: "$WORK_DIR"
curl -sfL --retry 5 -o /var/lib/jenkins-cloud/agent.jar "${JENKINS_URL}jnlpJars/agent.jar"
chmod 644 /var/lib/jenkins-cloud/agent.jar
cd "$WORK_DIR"
# JAVA_OPTS may come from the template environment.
# shellcheck disable=SC2086
exec runuser -u jenkins -- java ${JAVA_OPTS:-} -jar /var/lib/jenkins-cloud/agent.jar \
  -url "$JENKINS_URL" -name "$AGENT_NAME" -secret @/etc/jenkins-cloud/secret \
  -workDir "$WORK_DIR" "${TRANSPORT_ARGS[@]}"
AGENT
chmod 755 /usr/local/bin/jenkins-cloud-agent

cat > /etc/systemd/system/jenkins-cloud-agent.service <<'UNIT'
[Unit]
Description=Jenkins inbound agent (jenkins-cloud)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/local/bin/jenkins-cloud-agent
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now jenkins-cloud-agent.service
