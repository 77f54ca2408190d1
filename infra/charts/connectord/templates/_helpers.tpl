{{/* Full name of the release's objects. */}}
{{- define "connectord.fullname" -}}
{{- printf "%s-postern-connectord" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "connectord.labels" -}}
app.kubernetes.io/name: postern-connectord
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels that select the pods. */}}
{{- define "connectord.selector" -}}
app.kubernetes.io/name: postern-connectord
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The image reference. */}}
{{- define "connectord.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Checks of the values that have no default. */}}
{{- define "connectord.validate" -}}
{{- if not (regexMatch "^https://[^/\\s]+" .Values.meshURL) -}}
{{- fail "meshURL is required: the HTTPS URL of a mesh node, such as https://mesh.example.com" -}}
{{- end -}}
{{- if eq .Values.mode "deployment" -}}
{{- if not (regexMatch "^[a-z0-9][a-z0-9-]{0,62}$" .Values.group) -}}
{{- fail "group is required with mode deployment: the connector group whose workload_enrollment accepts this release's ServiceAccount (see values.yaml)" -}}
{{- end -}}
{{- if .Values.tokenSecret -}}
{{- fail "tokenSecret is for mode statefulset: mode deployment enrols by the pods' ServiceAccount tokens" -}}
{{- end -}}
{{- if not .Values.serviceAccountToken.audience -}}
{{- fail "serviceAccountToken.audience is required: the audience the group's workload_enrollment accepts (postern)" -}}
{{- end -}}
{{- if lt (int .Values.serviceAccountToken.expirationSeconds) 600 -}}
{{- fail "serviceAccountToken.expirationSeconds must be at least 600 (Kubernetes' minimum)" -}}
{{- end -}}
{{- else if eq .Values.mode "statefulset" -}}
{{- if not .Values.tokenSecret -}}
{{- fail "tokenSecret is required with mode statefulset: a Secret with one enrolment token per pod (see values.yaml)" -}}
{{- end -}}
{{- if .Values.group -}}
{{- fail "group is for mode deployment: with mode statefulset each one-time token names its group" -}}
{{- end -}}
{{- else -}}
{{- fail "mode must be deployment or statefulset" -}}
{{- end -}}
{{- if and (not .Values.allow) (not .Values.allowAny) -}}
{{- fail "allow is required (the internal destinations the mesh may reach), or set allowAny" -}}
{{- end -}}
{{- if lt (int .Values.replicas) 2 -}}
{{- fail "replicas must be at least 2: one connector must be able to drain while the others carry the group" -}}
{{- end -}}
{{- if not (has .Values.podAntiAffinity (list "soft" "hard")) -}}
{{- fail "podAntiAffinity must be soft or hard" -}}
{{- end -}}
{{- if or (lt (int .Values.maxUnavailable) 1) (ge (int .Values.maxUnavailable) (int .Values.replicas)) -}}
{{- fail "maxUnavailable must be at least 1 and less than replicas" -}}
{{- end -}}
{{- end -}}
