{{/* The forwarder (ebpf-producer forward): a Deployment of its own, off by default. */}}

{{- define "ekp.forwarderName" -}}
{{- printf "%s-forwarder" (include "ekp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Its own app.kubernetes.io/name: the DaemonSet's selector and Service must never match its pods. */}}
{{- define "ekp.forwarderSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-forwarder" (include "ekp.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ekp.forwarderSecretDir" -}}/etc/ebpf-kafka-producer/forward{{- end -}}

{{- define "ekp.forwardPort" -}}
{{- include "ekp.listenPort" (list "config.forward.listen" (dig "forward" "listen" "0.0.0.0:9465" .Values.config)) -}}
{{- end -}}

{{/* The forwarder exits within forward.drain_timeout_s (10 s when unset) + ~5 s; the kubelet must wait longer. */}}
{{- define "ekp.forwarderGracePeriodSeconds" -}}
{{- $timeout := dig "forward" "drain_timeout_s" 10 .Values.config -}}
{{- add (ceil $timeout | int) .Values.forwarder.terminationGraceMarginSeconds -}}
{{- end -}}

{{/*
The forwarder's config file: the collector's (Kafka, schema registry) plus config.forward, its
token or password and its TLS files pointed at the mounted credentials.forward Secret.
*/}}
{{- define "ekp.forwarderConfig" -}}
{{- $cfg := include "ekp.config" . | fromYaml -}}
{{- $fwd := get $cfg "forward" | default dict -}}
{{- if not (get $fwd "url") -}}
{{- fail "config.forward.url: forwarder.enabled needs the receiver's URL, e.g. https://splunk:8088/services/collector/event" -}}
{{- end -}}
{{- $creds := .Values.credentials.forward -}}
{{- $dir := include "ekp.forwarderSecretDir" . -}}
{{- $used := list -}}
{{- range $key, $secretKey := $creds.files -}}
{{- if $secretKey -}}
{{- $sub := ternary "auth" "tls" (has $key (list "token_file" "password_file")) -}}
{{- $section := get $fwd $sub | default dict -}}
{{- if hasKey $section $key -}}
{{- fail (printf "config.forward.%s.%s: the chart sets it from credentials.forward.files.%s; remove it from config" $sub $key $key) -}}
{{- end -}}
{{- $_ := set $section $key (printf "%s/%s" $dir $secretKey) -}}
{{- $_ := set $fwd $sub $section -}}
{{- $used = append $used $key -}}
{{- end -}}
{{- end -}}
{{- if and $used (not $creds.existingSecret) -}}
{{- fail (printf "credentials.forward.existingSecret: credentials.forward.files names keys (%s) but no Secret to take them from" (join ", " $used)) -}}
{{- end -}}
{{- if and $creds.existingSecret (not $used) -}}
{{- fail "credentials.forward.files: credentials.forward.existingSecret is set but no file is mapped from it" -}}
{{- end -}}
{{- $auth := get $fwd "auth" | default dict -}}
{{- if and (get $auth "password_file") (not (get $auth "username")) -}}
{{- fail "config.forward.auth.username: a basic-auth password is mounted but no username is set" -}}
{{- end -}}
{{- $_ := set $cfg "forward" $fwd -}}
{{- toYaml $cfg -}}
{{- end -}}
