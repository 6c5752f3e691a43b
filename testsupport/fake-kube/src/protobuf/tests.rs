//! Decoding hand-written Protobuf bytes. Every vector is written out from
//! the wire format (a tag byte is `field << 3 | wire type`: 0 varint, 2
//! length-delimited) and the field numbers in Kubernetes' generated.proto;
//! the first is what kubectl v1.33.9 really sent (`kubectl -v=9 create
//! namespace yelb`).

use super::json::message;
use super::schema::Schema;
use super::*;
use serde_json::json;

/// `"0a 02 64 62"` → bytes (spaces and newlines ignored).
fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn msg(name: &str, bytes: &str) -> Value {
    message(Schema::get().unwrap(), name, &hex(bytes)).unwrap()
}

#[test]
fn kubectl_create_namespace_body_is_the_json_a_json_client_sends() {
    let body = hex("6b 38 73 00 0a 0f 0a 02 76 31 12 09 4e 61 6d 65
         73 70 61 63 65 12 1c 0a 14 0a 04 79 65 6c 62 12
         00 1a 00 22 00 2a 00 32 00 38 00 42 00 12 00 1a
         02 0a 00 1a 00 22 00");
    // Every non-pointer field of ObjectMeta is on the wire, empty; Go's
    // JSON leaves the omitempty ones out and writes the zero Time as null.
    assert_eq!(
        decode(&body, None).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "yelb", "creationTimestamp": null},
            "spec": {},
            "status": {},
        })
    );
}

#[test]
fn secret_data_is_base64_and_a_present_false_pointer_is_kept() {
    // metadata(1) {name(1) "db"}; data(2) entry {key(1) "password",
    // value(2) 73 33 63 72 00 74}; type(3) "Opaque"; immutable(5) false.
    let secret = msg(
        "core/v1.Secret",
        "0a 04 0a 02 64 62
         12 12 0a 08 70 61 73 73 77 6f 72 64 12 06 73 33 63 72 00 74
         1a 06 4f 70 61 71 75 65
         28 00",
    );
    assert_eq!(
        secret,
        json!({
            "metadata": {"name": "db", "creationTimestamp": null},
            "data": {"password": "czNjcgB0"},
            "type": "Opaque",
            "immutable": false,
        })
    );
}

#[test]
fn int_or_string_is_a_number_or_a_string() {
    // port(3) 80; targetPort(4) {type(1) 0, intVal(2) 8080 = 90 3f, strVal(3) ""}.
    assert_eq!(
        msg("core/v1.ServicePort", "18 50 22 07 08 00 10 90 3f 1a 00"),
        json!({"port": 80, "targetPort": 8080})
    );
    // targetPort {type 1, intVal 0, strVal "http"}.
    assert_eq!(
        msg("core/v1.ServicePort", "18 50 22 0a 08 01 10 00 1a 04 68 74 74 70"),
        json!({"port": 80, "targetPort": "http"})
    );
    // An absent IntOrString is Go's zero value, 0 (encoding/json keeps
    // structs even when omitempty).
    assert_eq!(
        msg("core/v1.ServicePort", "18 50"),
        json!({"port": 80, "targetPort": 0})
    );
}

#[test]
fn negative_int32_is_sign_extended_on_the_wire() {
    // containerPort(3) -1: ten bytes.
    assert_eq!(
        msg("core/v1.ContainerPort", "18 ff ff ff ff ff ff ff ff ff 01"),
        json!({"containerPort": -1})
    );
    // Not omitempty: a zero is written.
    assert_eq!(msg("core/v1.ContainerPort", ""), json!({"containerPort": 0}));
}

#[test]
fn times_micro_times_and_durations() {
    // 1709210096 = 6·2^28 + 47·2^21 + 1·2^14 + 115·2^7 + 112 →
    // f0 f3 81 af 06; nanos 123456789 → 95 9a ef 3a.
    assert_eq!(
        msg("meta/v1.Time", "08 f0 f3 81 af 06"),
        json!("2024-02-29T12:34:56Z")
    );
    // Time keeps seconds only.
    assert_eq!(
        msg("meta/v1.Time", "08 f0 f3 81 af 06 10 95 9a ef 3a"),
        json!("2024-02-29T12:34:56Z")
    );
    assert_eq!(
        msg("meta/v1.MicroTime", "08 f0 f3 81 af 06 10 95 9a ef 3a"),
        json!("2024-02-29T12:34:56.123456Z")
    );
    assert_eq!(msg("meta/v1.Time", ""), Value::Null);
    // 3723.5 s in nanoseconds = 3723500000000 → 80 a6 94 8f af 6c.
    assert_eq!(msg("meta/v1.Duration", "08 80 a6 94 8f af 6c"), json!("1h2m3.5s"));
    assert_eq!(msg("meta/v1.Duration", ""), json!("0s"));
}

#[test]
fn object_meta_with_labels_timestamp_and_managed_fields() {
    // creationTimestamp(8) Time; labels(11) {app: web}; managedFields(17,
    // tag 8a 01) [{manager(1) "kubectl", fieldsType(6) "FieldsV1",
    // fieldsV1(7) {Raw(1) '{"f:data":{}}'}}].
    let meta = msg(
        "meta/v1.ObjectMeta",
        "42 06 08 f0 f3 81 af 06
         5a 0a 0a 03 61 70 70 12 03 77 65 62
         8a 01 24
           0a 07 6b 75 62 65 63 74 6c
           32 08 46 69 65 6c 64 73 56 31
           3a 0f 0a 0d 7b 22 66 3a 64 61 74 61 22 3a 7b 7d 7d",
    );
    assert_eq!(
        meta,
        json!({
            "creationTimestamp": "2024-02-29T12:34:56Z",
            "labels": {"app": "web"},
            "managedFields": [{
                "manager": "kubectl",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {}},
            }],
        })
    );
}

#[test]
fn quantities_raw_extensions_and_maps_of_messages() {
    // limits(1) {cpu: Quantity{string(1) "500m"}}.
    assert_eq!(
        msg(
            "core/v1.ResourceRequirements",
            "0a 0d 0a 03 63 70 75 12 06 0a 04 35 30 30 6d"
        ),
        json!({"limits": {"cpu": "500m"}})
    );
    assert_eq!(msg("api/resource.Quantity", ""), json!("0"));
    // raw(1) '{"a":1}'.
    assert_eq!(
        msg("runtime.RawExtension", "0a 07 7b 22 61 22 3a 31 7d"),
        json!({"a": 1})
    );
    assert_eq!(msg("runtime.RawExtension", ""), Value::Null);
}

#[test]
fn repeated_fields_plain_and_packed() {
    // verbs(1) "get", "list"; verbs has no omitempty, so none is null.
    assert_eq!(
        msg("rbac/v1.PolicyRule", "0a 03 67 65 74 0a 04 6c 69 73 74"),
        json!({"verbs": ["get", "list"]})
    );
    assert_eq!(msg("rbac/v1.PolicyRule", ""), json!({"verbs": null}));
    // supplementalGroups(4) int64: one value per tag (20 01, 20 02), or
    // packed in one length-delimited run (22 02 01 02).
    let expected = json!({"supplementalGroups": [1, 2]});
    assert_eq!(msg("core/v1.PodSecurityContext", "20 01 20 02"), expected);
    assert_eq!(msg("core/v1.PodSecurityContext", "22 02 01 02"), expected);
}

#[test]
fn pointers_keep_present_zeros_and_omit_absent_ones() {
    // replicas(1) 0 present.
    let spec = msg("apps/v1.DeploymentSpec", "08 00");
    assert_eq!(spec["replicas"], json!(0));
    // selector is a pointer without omitempty: null when absent.
    assert_eq!(spec["selector"], Value::Null);
    assert!(spec.get("revisionHistoryLimit").is_none());
    assert!(msg("apps/v1.DeploymentSpec", "").get("replicas").is_none());
}

#[test]
fn embedded_structs_are_inlined() {
    // Volume: name(1) "data", volumeSource(2) {emptyDir(2) {}}.
    assert_eq!(
        msg("core/v1.Volume", "0a 04 64 61 74 61 12 02 12 00"),
        json!({"name": "data", "emptyDir": {}})
    );
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped() {
    // NamespaceSpec finalizers(1) "kubernetes", then unknown fields 9
    // (varint), 10 (fixed64), 11 (bytes) and 12 (fixed32).
    assert_eq!(
        msg(
            "core/v1.NamespaceSpec",
            "0a 0a 6b 75 62 65 72 6e 65 74 65 73
             48 96 01
             51 01 02 03 04 05 06 07 08
             5a 02 ff ff
             65 01 02 03 04"
        ),
        json!({"finalizers": ["kubernetes"]})
    );
}

#[test]
fn delete_options_in_any_group_version() {
    // typeMeta {apiVersion "v1", kind "DeleteOptions"}; raw {gracePeriodSeconds(1) 0,
    // preconditions(2) {uid(1) "u1"}, propagationPolicy(4) "Background", dryRun(5) "All"}.
    let body = hex("6b 38 73 00
         0a 13 0a 02 76 31 12 0d 44 65 6c 65 74 65 4f 70 74 69 6f 6e 73
         12 19 08 00 12 04 0a 02 75 31 22 0a 42 61 63 6b 67 72 6f 75 6e 64 2a 03 41 6c 6c");
    assert_eq!(
        delete_options(&body).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "u1"},
            "propagationPolicy": "Background",
            "dryRun": ["All"],
        })
    );
}

#[test]
fn an_empty_envelope_kind_is_taken_from_the_path() {
    // typeMeta {}; raw = NamespaceSpec-less Namespace {metadata {name "a"}}.
    let body = hex("6b 38 73 00 0a 00 12 05 0a 03 0a 01 61");
    let ns = decode(&body, Some(("v1", "Namespace"))).unwrap();
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["metadata"]["name"], "a");
    let e = decode(&body, None).unwrap_err();
    assert!(matches!(e.error, DecodeError::MissingKind { .. }), "{e:?}");
}

#[test]
fn undecodable_bodies_get_the_real_servers_400_wording() {
    let ns = crate::kinds::builtins()
        .into_iter()
        .find(|t| t.kind == "Namespace")
        .unwrap();
    let message = |body: &[u8]| {
        let e = request_body(body, &ns).unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        e.message
    };
    assert_eq!(
        message(b"{}"),
        "the object provided is unrecognized (must be of type Namespace): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] ({})"
    );
    // The envelope cut short.
    assert_eq!(
        message(&hex("6b 38 73 00 0a 0f 0a 02")),
        "the object provided is unrecognized (must be of type Namespace): unexpected EOF (6b3873000a0f0a02)"
    );
    // A Namespace whose metadata(1) is a varint.
    assert_eq!(
        message(&hex(
            "6b 38 73 00 0a 0f 0a 02 76 31 12 09 4e 61 6d 65 73 70 61 63 65 12 02 08 01"
        )),
        "Namespace in version \"v1\" cannot be handled as a Namespace: proto: wrong wireType = 0 for field metadata"
    );
    // A kind the schema does not have.
    assert_eq!(
        message(&hex("6b 38 73 00 0a 09 0a 02 76 31 12 03 46 6f 6f 12 00")),
        "Foo in version \"v1\" cannot be handled as a Namespace: no kind \"Foo\" is registered for version \"v1\" in the fake kube server's protobuf schema"
    );
}

#[test]
fn accept_headers() {
    assert!(accepts_json(None));
    assert!(accepts_json(Some("")));
    assert!(accepts_json(Some(
        "application/vnd.kubernetes.protobuf,application/json"
    )));
    assert!(accepts_json(Some("application/json;stream=watch")));
    assert!(accepts_json(Some("*/*")));
    assert!(!accepts_json(Some("application/vnd.kubernetes.protobuf")));
    assert!(!accepts_json(Some(
        "application/vnd.kubernetes.protobuf;stream=watch, application/yaml"
    )));
}
