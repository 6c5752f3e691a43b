{{- define "base.labels" -}}
app.kubernetes.io/name: istio-base
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: istio
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/*
The Istio CRDs: group, kind, plural, short names and served versions (the
first listed is the storage version, as upstream stores v1 where it
exists).
*/}}
{{- define "base.crds" -}}
- {group: networking.istio.io, kind: DestinationRule, plural: destinationrules, short: [dr], versions: [v1, v1alpha3, v1beta1]}
- {group: networking.istio.io, kind: EnvoyFilter, plural: envoyfilters, short: [], versions: [v1alpha3]}
- {group: networking.istio.io, kind: Gateway, plural: gateways, short: [gw], versions: [v1, v1alpha3, v1beta1]}
- {group: networking.istio.io, kind: ProxyConfig, plural: proxyconfigs, short: [], versions: [v1beta1]}
- {group: networking.istio.io, kind: ServiceEntry, plural: serviceentries, short: [se], versions: [v1, v1alpha3, v1beta1]}
- {group: networking.istio.io, kind: Sidecar, plural: sidecars, short: [], versions: [v1, v1alpha3, v1beta1]}
- {group: networking.istio.io, kind: VirtualService, plural: virtualservices, short: [vs], versions: [v1, v1alpha3, v1beta1]}
- {group: networking.istio.io, kind: WorkloadEntry, plural: workloadentries, short: [we], versions: [v1, v1alpha3, v1beta1]}
- {group: networking.istio.io, kind: WorkloadGroup, plural: workloadgroups, short: [wg], versions: [v1, v1alpha3, v1beta1]}
- {group: security.istio.io, kind: AuthorizationPolicy, plural: authorizationpolicies, short: [ap], versions: [v1, v1beta1]}
- {group: security.istio.io, kind: PeerAuthentication, plural: peerauthentications, short: [pa], versions: [v1, v1beta1]}
- {group: security.istio.io, kind: RequestAuthentication, plural: requestauthentications, short: [ra], versions: [v1, v1beta1]}
- {group: telemetry.istio.io, kind: Telemetry, plural: telemetries, short: [telemetry], versions: [v1, v1alpha1]}
- {group: extensions.istio.io, kind: WasmPlugin, plural: wasmplugins, short: [], versions: [v1alpha1]}
- {group: extensions.istio.io, kind: TrafficExtension, plural: trafficextensions, short: [], versions: [v1alpha1]}
{{- end }}
