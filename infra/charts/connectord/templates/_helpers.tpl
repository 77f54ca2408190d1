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
{{- if not .Values.tokenSecret -}}
{{- fail "tokenSecret is required: a Secret with one enrolment token per pod (see values.yaml)" -}}
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
