{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "mess-exchange.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, prefixed with the chart name unless it
already contains it. Truncated to 63 characters.
*/}}
{{- define "mess-exchange.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "mess-exchange.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "mess-exchange.labels" -}}
helm.sh/chart: {{ include "mess-exchange.chart" . }}
{{ include "mess-exchange.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels (immutable once a Deployment exists: never add to these).
*/}}
{{- define "mess-exchange.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mess-exchange.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "mess-exchange.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mess-exchange.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding S3_ACCESS_KEY / S3_SECRET_KEY: the user's existing one or ours.
*/}}
{{- define "mess-exchange.s3SecretName" -}}
{{- if .Values.s3.existingSecret }}
{{- .Values.s3.existingSecret }}
{{- else }}
{{- printf "%s-s3" (include "mess-exchange.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
True ("true") when the chart itself creates the S3 credentials Secret.
*/}}
{{- define "mess-exchange.createS3Secret" -}}
{{- if and (eq .Values.storage.type "s3") (not .Values.s3.existingSecret) (or .Values.s3.accessKey .Values.s3.secretKey) }}true{{ end }}
{{- end }}

{{/*
True ("true") when the pod gets S3 credentials from a Secret (ours or an existing one).
Without either, the server gets no S3_ACCESS_KEY/S3_SECRET_KEY.
*/}}
{{- define "mess-exchange.useS3Secret" -}}
{{- if and (eq .Values.storage.type "s3") (or .Values.s3.existingSecret (include "mess-exchange.createS3Secret" .)) }}true{{ end }}
{{- end }}

{{/*
Name of the ConfigMap holding the capability catalog, when there is one.
*/}}
{{- define "mess-exchange.capabilitiesConfigMap" -}}
{{- if .Values.capabilities.existingConfigMap }}
{{- .Values.capabilities.existingConfigMap }}
{{- else if .Values.capabilities.catalog }}
{{- printf "%s-capabilities" (include "mess-exchange.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The value of CAPABILITIES_FILE, or empty.
*/}}
{{- define "mess-exchange.capabilitiesFile" -}}
{{- if include "mess-exchange.capabilitiesConfigMap" . }}
{{- .Values.capabilities.mountPath }}
{{- else }}
{{- .Values.capabilities.file }}
{{- end }}
{{- end }}

{{/*
Refuse settings that cannot work. Included by the Deployment.
*/}}
{{- define "mess-exchange.validate" -}}
{{- if not (has .Values.storage.type (list "filesystem" "s3")) }}
{{- fail (printf "storage.type must be \"filesystem\" or \"s3\", not %q" (toString .Values.storage.type)) }}
{{- end }}
{{- if and (eq .Values.storage.type "filesystem") (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount=%d needs storage.type=s3: on filesystem storage one pod owns the data directory and keeps its state in memory, a second one would diverge from it. Use replicaCount=1, or S3 storage for replicas." (int .Values.replicaCount)) }}
{{- end }}
{{- if and (eq .Values.storage.type "filesystem") .Values.replicas.enabled }}
{{- fail "replicas.enabled=true needs storage.type=s3: replicas share an S3 bucket, never a data directory" }}
{{- end }}
{{- if not (has (toString .Values.s3.allowHttp) (list "" "true" "false")) }}
{{- fail (printf "s3.allowHttp must be true, false or empty (the server's default), not %q" (toString .Values.s3.allowHttp)) }}
{{- end }}
{{- if and (eq .Values.storage.type "s3") (not .Values.s3.bucket) }}
{{- fail "storage.type=s3 needs s3.bucket" }}
{{- end }}
{{- if not (has .Values.config.logFormat (list "text" "json")) }}
{{- fail (printf "config.logFormat must be \"text\" or \"json\", not %q" (toString .Values.config.logFormat)) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding REGISTRATION_TOKEN / REGISTRATION_TOKENS: the user's existing
one or ours.
*/}}
{{- define "mess-exchange.registrationSecretName" -}}
{{- if .Values.registration.existingSecret }}
{{- .Values.registration.existingSecret }}
{{- else }}
{{- printf "%s-registration" (include "mess-exchange.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
True ("true") when the chart itself creates the registration Secret (a token is set and
no existing Secret is named). Without a token and an existing Secret the server gets
neither variable and registration stays open.
*/}}
{{- define "mess-exchange.createRegistrationSecret" -}}
{{- if and (not .Values.registration.existingSecret) (or .Values.registration.token .Values.registration.tokens) }}true{{ end }}
{{- end }}

{{/*
True ("true") in replica mode: S3 storage and more than one pod, or replicas.enabled.
The pods then share the bucket through leases: ADVERTISE_URL and LEASE_PERIOD are set,
the headless Service and the PodDisruptionBudget exist, and updates roll.
*/}}
{{- define "mess-exchange.replicaMode" -}}
{{- if and (eq .Values.storage.type "s3") (or (gt (int .Values.replicaCount) 1) .Values.replicas.enabled) }}true{{ end }}
{{- end }}

{{/*
Name of the headless Service listing every ready replica.
*/}}
{{- define "mess-exchange.replicasServiceName" -}}
{{- printf "%s-replicas" (include "mess-exchange.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
