{{/* Names, labels and the image reference shared by every template. */}}

{{- define "databuild.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: object names are DNS-1123 labels, hence 63 characters. */}}
{{- define "databuild.fullname" -}}
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

{{- define "databuild.selectorLabels" -}}
app.kubernetes.io/name: {{ include "databuild.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "databuild.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "databuild.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: databuild
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "databuild.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "databuild.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "databuild.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The operator's permissions on the namespaced resources it reconciles. One list for
     both RBAC modes, so a ClusterRole and the per-namespace Roles cannot drift apart.
     Explicit resources and verbs only: no wildcards, and never Secrets. Keep in sync
     with what the operator's API gateway calls (operator/databuild/operator/). */}}
{{- define "databuild.rules" -}}
# JobDefinitions are read; their status reports whether they are valid.
- apiGroups: ["databuild.dev"]
  resources: ["jobdefinitions"]
  verbs: ["get", "list", "watch"]
# Partitions (the catalog) and JobRuns are created by the operator; it never edits
# their spec and never deletes Partitions. Finished JobRuns past their retention are
# deleted (the Wants they created go with them, by ownerReference).
- apiGroups: ["databuild.dev"]
  resources: ["partitions"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: ["databuild.dev"]
  resources: ["jobruns"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Wants are created for upstream needs and for a Schedule's ticks; a Schedule's terminal
# Wants beyond its spec.historyLimit are deleted.
- apiGroups: ["databuild.dev"]
  resources: ["wants"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Schedules are read; their status says which ticks are handled.
- apiGroups: ["databuild.dev"]
  resources: ["schedules"]
  verbs: ["get", "list", "watch"]
# TaintRequests are read; their status says what each tainted; applied ones past the
# JobRun retention are deleted.
- apiGroups: ["databuild.dev"]
  resources: ["taintrequests"]
  verbs: ["get", "list", "watch", "delete"]
# ConcurrencyPools are read (their limits); their status counts running and waiting runs.
- apiGroups: ["databuild.dev"]
  resources: ["concurrencypools"]
  verbs: ["get", "list", "watch"]
# Every state lives in status.
- apiGroups: ["databuild.dev"]
  resources: ["jobdefinitions/status", "wants/status", "partitions/status", "jobruns/status", "schedules/status", "taintrequests/status", "concurrencypools/status"]
  verbs: ["get", "update", "patch"]
# Jobs carry blockOwnerDeletion towards their JobRun, which needs update on the owner's
# finalizers where OwnerReferencesPermissionEnforcement is enabled.
- apiGroups: ["databuild.dev"]
  resources: ["jobruns/finalizers"]
  verbs: ["update"]
# Each build attempt is a batch Job; cancelling a build deletes its Job. patch removes
# the operator's finalizer once the Job's outcome is recorded in its JobRun.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Read-only: a failed attempt's termination message reports dependency misses.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Every state transition is also a Kubernetes Event on the resource; a batch Job's
# FailedCreate Events are read to say why a build cannot start.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list"]
{{- end -}}

{{/* Leader election: one Lease in the operator's own namespace, in both modes. */}}
{{- define "databuild.leaseRules" -}}
# Only this release's Lease (named by --lease-name); create cannot be limited by name.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "databuild.fullname" . | quote }}]
  verbs: ["get", "patch"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
{{- end -}}

{{/* Refuse a second release reconciling the namespaces this one does: both would plan
     and write the same objects (each holds its own Lease). Helm's lookup sees the
     cluster on install and upgrade; `helm template` renders without the check. The
     operator's own Roles say what they watch in the databuild.dev/watches label. */}}
{{- define "databuild.exclusiveNamespaces" -}}
{{- $me := .Release.Name -}}
{{- $mine := .Values.watchNamespaces -}}
{{- $clusterRoles := (lookup "rbac.authorization.k8s.io/v1" "ClusterRole" "" "") | default dict -}}
{{- range $role := ($clusterRoles.items | default list) -}}
{{- $labels := $role.metadata.labels | default dict -}}
{{- if and (eq (get $labels "databuild.dev/watches") "all") (ne (get $labels "app.kubernetes.io/instance") $me) -}}
{{- fail (printf "release %s already watches every namespace (ClusterRole %s): two operators would reconcile the same objects; install one release, or give each its own watchNamespaces" (get $labels "app.kubernetes.io/instance") $role.metadata.name) -}}
{{- end -}}
{{- end -}}
{{- $roles := (lookup "rbac.authorization.k8s.io/v1" "Role" "" "") | default dict -}}
{{- range $role := ($roles.items | default list) -}}
{{- $labels := $role.metadata.labels | default dict -}}
{{- if and (eq (get $labels "databuild.dev/watches") "namespace") (ne (get $labels "app.kubernetes.io/instance") $me) -}}
{{- if or (not $mine) (has $role.metadata.namespace $mine) -}}
{{- fail (printf "release %s already watches namespace %s (Role %s): two operators would reconcile the same objects; leave %s out of watchNamespaces" (get $labels "app.kubernetes.io/instance") $role.metadata.namespace $role.metadata.name $role.metadata.namespace) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The Build Event Log: a URL from a Secret, a URL from values, or embedded SQLite. */}}
{{- define "databuild.belSqliteDir" -}}/var/lib/databuild{{- end -}}
{{- define "databuild.belEmbedded" -}}
{{- if and (not .Values.bel.url) (not .Values.bel.urlFromSecret.name) }}true{{ end -}}
{{- end -}}
{{- define "databuild.belClaimName" -}}
{{- default (printf "%s-bel" (include "databuild.fullname" .)) .Values.bel.persistence.existingClaim -}}
{{- end -}}

{{/*
The namespace the in-cluster UI shows: ui.namespace, else the first watched namespace.
*/}}
{{- define "databuild.uiNamespace" -}}
{{- if .Values.ui.namespace }}{{ .Values.ui.namespace }}
{{- else if .Values.watchNamespaces }}{{ first .Values.watchNamespaces }}
{{- else }}{{ fail "ui.enabled needs ui.namespace (the namespace the UI shows) when watchNamespaces is empty" }}
{{- end }}
{{- end }}
