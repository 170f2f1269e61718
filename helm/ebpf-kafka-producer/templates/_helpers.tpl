{{- define "ekp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ekp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ekp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ekp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ekp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ekp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ekp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ekp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ekp.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where the Secrets are mounted; the collector's *_file keys point below these. */}}
{{- define "ekp.kafkaSecretDir" -}}/etc/ebpf-kafka-producer/kafka{{- end -}}
{{- define "ekp.registrySecretDir" -}}/etc/ebpf-kafka-producer/schema-registry{{- end -}}

{{/*
A listen key's port. Args: list key listen. The probes (and a Service) need it, so an endpoint the
kubelet cannot reach is an error.
*/}}
{{- define "ekp.listenPort" -}}
{{- $key := index . 0 -}}
{{- $listen := index . 1 | toString -}}
{{- if not (regexMatch "^(0\\.0\\.0\\.0)?:[0-9]{1,5}$" $listen) -}}
{{- fail (printf "%s: %q must be 0.0.0.0:PORT: the probes, the Service and Prometheus reach the pod on its IP" $key $listen) -}}
{{- end -}}
{{- $port := regexFind "[0-9]+$" $listen | atoi -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "%s: port %d must be 1-65535 (port 0 picks a random port the probes cannot know)" $key $port) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/* The collector's metrics port, from config.metrics.listen (the collector's default when unset). */}}
{{- define "ekp.metricsPort" -}}
{{- include "ekp.listenPort" (list "config.metrics.listen" (dig "metrics" "listen" "0.0.0.0:9464" .Values.config)) -}}
{{- end -}}

{{/* The collector exits within shutdown.timeout_s + 5 s (20 s when unset); the kubelet must wait longer. */}}
{{- define "ekp.terminationGracePeriodSeconds" -}}
{{- $timeout := dig "shutdown" "timeout_s" 20 .Values.config -}}
{{- add (ceil $timeout | int) .Values.terminationGraceMarginSeconds -}}
{{- end -}}

{{/*
Fail on any config key that looks like a credential: its value would be stored in
a ConfigMap, readable by anyone who can read the namespace. The message names the
key, never the value.
*/}}
{{- define "ekp.assertNoCredentials" -}}
{{- $path := index . 0 -}}
{{- range $k, $v := index . 1 -}}
{{- $p := printf "%s.%s" $path $k -}}
{{- if and (regexMatch "(?i)(password|secret|passphrase|token|\\.pem$|oauthbearer\\.config)" $k) (not (hasSuffix "_file" $k)) (ne $k "token_scheme") -}}
{{- fail (printf "%s: credentials must not be in values (they would be stored in a ConfigMap); put the file in the Secret named by credentials.kafka.existingSecret or credentials.schemaRegistry.existingSecret and map it under credentials.*.files" $p) -}}
{{- end -}}
{{- if kindIs "map" $v -}}
{{- include "ekp.assertNoCredentials" (list $p $v) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Point the *_file keys of one config section at a mounted Secret. Args: list
section-dict credentials-values config-path values-path mount-dir.
*/}}
{{- define "ekp.mountFiles" -}}
{{- $section := index . 0 -}}
{{- $creds := index . 1 -}}
{{- $cfgPath := index . 2 -}}
{{- $valPath := index . 3 -}}
{{- $dir := index . 4 -}}
{{- $used := list -}}
{{- range $key, $secretKey := $creds.files -}}
{{- if $secretKey -}}
{{- if hasKey $section $key -}}
{{- fail (printf "%s.%s: the chart sets it from %s.files.%s; remove it from config" $cfgPath $key $valPath $key) -}}
{{- end -}}
{{- $_ := set $section $key (printf "%s/%s" $dir $secretKey) -}}
{{- $used = append $used $key -}}
{{- end -}}
{{- end -}}
{{- if and $used (not $creds.existingSecret) -}}
{{- fail (printf "%s.existingSecret: %s.files names keys (%s) but no Secret to take them from" $valPath $valPath (join ", " $used)) -}}
{{- end -}}
{{- if and $creds.existingSecret (not $used) -}}
{{- fail (printf "%s.files: %s.existingSecret is set but no file is mapped from it" $valPath $valPath) -}}
{{- end -}}
{{- end -}}

{{/* The collector's config file: values' `config` plus the mounted credential paths; the forwarder's
section goes to the forwarder alone (a change there must not roll the collectors). */}}
{{- define "ekp.collectorConfig" -}}
{{- $cfg := include "ekp.config" . | fromYaml -}}
{{- $_ := unset $cfg "forward" -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* values' `config`, checked, with the mounted Kafka and schema registry credential paths. */}}
{{- define "ekp.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- include "ekp.assertNoCredentials" (list "config" $cfg) -}}
{{- if get $cfg "host" -}}
{{- fail "config.host: leave it empty: each pod stamps its own node's name, from NODE_NAME" -}}
{{- end -}}
{{- $kafka := get $cfg "kafka" | default dict -}}
{{- $security := get $kafka "security" | default dict -}}
{{- include "ekp.mountFiles" (list $security .Values.credentials.kafka "config.kafka.security" "credentials.kafka" (include "ekp.kafkaSecretDir" .)) -}}
{{- include "ekp.checkKafkaSecurity" $security -}}
{{- if $security -}}
{{- $_ := set $kafka "security" $security -}}
{{- $_ := set $cfg "kafka" $kafka -}}
{{- end -}}
{{- $registry := get $cfg "schema_registry" | default dict -}}
{{- include "ekp.mountFiles" (list $registry .Values.credentials.schemaRegistry "config.schema_registry" "credentials.schemaRegistry" (include "ekp.registrySecretDir" .)) -}}
{{- if and (get $registry "password_file") (not (get $registry "username")) -}}
{{- fail "config.schema_registry.username: a schema registry password file is mounted but no username is set" -}}
{{- end -}}
{{- if and $registry (not (get $registry "url")) -}}
{{- fail "config.schema_registry.url: schema registry settings are given but no url" -}}
{{- end -}}
{{- if $registry -}}
{{- $_ := set $cfg "schema_registry" $registry -}}
{{- end -}}
{{- $socket := include "ekp.criSocket" . -}}
{{- if $socket -}}
{{- $k8s := get $cfg "k8s" | default dict -}}
{{- if hasKey $k8s "runtime_socket" -}}
{{- fail "config.k8s.runtime_socket: the chart sets it from criSocket (the mounted socket); set criSocket instead" -}}
{{- end -}}
{{- $_ := set $k8s "runtime_socket" $socket -}}
{{- $_ := set $cfg "k8s" $k8s -}}
{{- end -}}
{{- $spool := get $cfg "spool" | default dict -}}
{{- if hasKey $spool "dir" -}}
{{- fail "config.spool.dir: set by the chart (the mount of spool.hostPath); leave it out" -}}
{{- end -}}
{{- if include "ekp.spoolEnabled" . -}}
{{- $_ := set $spool "dir" (include "ekp.spoolDir" .) -}}
{{- $_ := set $cfg "spool" $spool -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The CRI socket to mount: criSocket, unless attribution is off (config.k8s.enabled: false). */}}
{{- define "ekp.criSocket" -}}
{{- $enabled := dig "k8s" "enabled" true (.Values.config | default dict) -}}
{{- if and $enabled .Values.criSocket -}}
{{- if not (hasPrefix "/" .Values.criSocket) -}}
{{- fail (printf "criSocket: %q must be an absolute path on the node" .Values.criSocket) -}}
{{- end -}}
{{- .Values.criSocket -}}
{{- end -}}
{{- end -}}

{{/* Where the spool volume is mounted; config.spool.dir points at it. */}}
{{- define "ekp.spoolDir" -}}/var/lib/ebpf-kafka-producer{{- end -}}

{{/* "true" unless config.spool.enabled is false (the collector's default is on). */}}
{{- define "ekp.spoolEnabled" -}}
{{- $spool := get (.Values.config | default dict) "spool" | default dict -}}
{{- if or (not (hasKey $spool "enabled")) $spool.enabled -}}true{{- end -}}
{{- end -}}

{{/* Mounted files that the chosen protocol would ignore are a misconfiguration, not a default. */}}
{{- define "ekp.checkKafkaSecurity" -}}
{{- $protocol := get . "protocol" | default "PLAINTEXT" -}}
{{- $tls := has $protocol (list "SSL" "SASL_SSL") -}}
{{- $sasl := has $protocol (list "SASL_PLAINTEXT" "SASL_SSL") -}}
{{- range $key := list "ca_file" "cert_file" "key_file" "key_password_file" -}}
{{- if and (hasKey $ $key) (not $tls) -}}
{{- fail (printf "config.kafka.security.%s: TLS material is mounted but config.kafka.security.protocol is %s; use SSL or SASL_SSL" $key $protocol) -}}
{{- end -}}
{{- end -}}
{{- if ne (hasKey . "cert_file") (hasKey . "key_file") -}}
{{- fail "credentials.kafka.files: cert_file and key_file go together (a client certificate needs its key)" -}}
{{- end -}}
{{- if and (hasKey . "password_file") (not $sasl) -}}
{{- fail (printf "config.kafka.security.password_file: a SASL password is mounted but config.kafka.security.protocol is %s; use SASL_PLAINTEXT or SASL_SSL" $protocol) -}}
{{- end -}}
{{- if and $sasl (not (hasKey . "password_file")) -}}
{{- fail (printf "credentials.kafka.files.password_file: protocol %s needs the SASL password from credentials.kafka.existingSecret" $protocol) -}}
{{- end -}}
{{- if and $sasl (not (get . "username")) -}}
{{- fail (printf "config.kafka.security.username: protocol %s needs a SASL username" $protocol) -}}
{{- end -}}
{{- end -}}

{{/* The container's securityContext for the chosen mode. */}}
{{- define "ekp.securityContext" -}}
{{- if eq .Values.securityMode "privileged" -}}
privileged: true
readOnlyRootFilesystem: true
runAsUser: 0
{{- else -}}
{{- $lp := .Values.leastPrivilege -}}
{{- $caps := concat $lp.capabilities $lp.extraCapabilities | uniq -}}
{{- range $need := list "BPF" "PERFMON" -}}
{{- if not (has $need $caps) -}}
{{- fail (printf "leastPrivilege.capabilities: must include %s: without CAP_BPF and CAP_PERFMON the collector cannot load and attach its programs (use securityMode: privileged on kernels before 5.8)" $need) -}}
{{- end -}}
{{- end -}}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
# uid 0: Kubernetes grants no ambient capabilities, so a non-root process would lose these at exec.
runAsUser: 0
runAsNonRoot: false
capabilities:
  drop: [ALL]
  add: {{ toJson $caps }}
{{- with $lp.seccompProfile }}
seccompProfile:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
Inside the container each host path sits where the collector and BCC look for it
(the build links under /lib/modules are absolute, so those paths must not move).
*/}}
{{- define "ekp.hostMountTarget" -}}
{{- $targets := dict "tracefs" "/sys/kernel/tracing" "modules" "/lib/modules" "usrSrc" "/usr/src" "cgroup" "/sys/fs/cgroup" "bpffs" "/sys/fs/bpf" -}}
{{- get $targets (index . 0) -}}
{{- end -}}

{{/*
A Secret volume holding only the mapped keys, readable by root alone (or, with a third arg "0440",
by the pod's fsGroup too). Args: list name files [mode].
*/}}
{{- define "ekp.secretVolume" -}}
{{- $keys := list -}}
{{- range $_, $secretKey := index . 1 -}}
{{- if $secretKey -}}
{{- $keys = append $keys $secretKey -}}
{{- end -}}
{{- end -}}
secret:
  secretName: {{ index . 0 }}
  defaultMode: {{ if gt (len .) 2 }}{{ index . 2 }}{{ else }}0400{{ end }}
  items:
  {{- range $keys | uniq | sortAlpha }}
    - key: {{ . }}
      path: {{ . }}
  {{- end }}
{{- end -}}
