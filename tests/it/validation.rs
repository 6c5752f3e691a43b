//! Every validation error, one bad stack each: the message names the file,
//! line and column of the offending token (or lists the cycle), every error
//! in a file is reported, and a stack that fails validation creates nothing.

use aws_sdk_ec2::types::Filter;
use meshform::provider::TAG_STACK;

use crate::support::cli::{Workdir, expect_code, meshform, stderr};
use crate::support::moto::Moto;

/// A small valid stack; each test breaks one thing in it.
const VALID: &str = r#"[stack]
name = "validation"
region = "us-west-2"

[vars]
name = "Demo"
subnet_count = 2

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.192.0.0/16"
tags = { Name = "${var.name}" }

[resource.subnet]
type = "aws.ec2.subnet"
vpc_id = "${vpc.id}"
cidr_block = "10.192.10.0/24"
availability_zone = "${az[0]}"

[output.vpc_id]
value = "${vpc.id}"
"#;

/// `VALID` with `from` (which must occur exactly once) replaced by `to`.
fn edit(from: &str, to: &str) -> String {
    edit_text(VALID, from, to)
}

fn edit_text(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` must occur once in:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// 1-based line and column (in characters) of the start of `needle`, which
/// must occur exactly once in `text`, moved `skip` characters in.
fn locate(text: &str, needle: &str, skip: usize) -> (usize, usize) {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "`{needle}` must occur once in:\n{text}"
    );
    let offset = text.find(needle).unwrap();
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1 + skip;
    (line, col)
}

/// Diagnostics with miette's line wrapping undone: words joined by single
/// spaces, the `│` of wrapped message lines dropped.
fn flat(s: &str) -> String {
    s.split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

/// The outcome of `meshform validate` on a bad stack.
struct Failure {
    /// The stack file, as passed on the command line.
    path: String,
    text: String,
    /// Stderr with wrapping undone (see [`flat`]).
    stderr: String,
    _dir: Workdir,
}

impl Failure {
    /// Asserts an error `message` located at `needle` (+`skip` characters).
    fn expect(&self, needle: &str, skip: usize, message: &str) -> &Self {
        let (line, col) = locate(&self.text, needle, skip);
        let want = flat(&format!("{}:{line}:{col}: {message}", self.path));
        assert!(
            self.stderr.contains(&want),
            "expected `{want}` in:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts an error about the whole file (no position).
    fn expect_in_file(&self, message: &str) -> &Self {
        let want = flat(&format!("{}: {message}", self.path));
        assert!(
            self.stderr.contains(&want),
            "expected `{want}` in:\n{}",
            self.stderr
        );
        self
    }

    fn expect_help(&self, help: &str) -> &Self {
        let want = flat(&format!("help: {help}"));
        assert!(
            self.stderr.contains(&want),
            "expected `{want}` in:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts exactly `n` errors were reported (the count line and one
    /// `× path...` line per error).
    fn expect_count(&self, n: usize) -> &Self {
        let count = if n == 1 {
            "1 error".to_string()
        } else {
            format!("{n} errors")
        };
        let header = format!("{count} in {}", self.path);
        assert!(
            self.stderr.contains(&header),
            "expected `{header}` in:\n{}",
            self.stderr
        );
        let each = self.stderr.matches(&format!("× {}:", self.path)).count();
        assert_eq!(each, n, "expected {n} located errors in:\n{}", self.stderr);
        self
    }

    /// The stderr positions of the errors at each needle, to check order.
    fn position_of(&self, needle: &str, skip: usize) -> usize {
        let (line, col) = locate(&self.text, needle, skip);
        let at = format!("× {}:{line}:{col}:", self.path);
        self.stderr
            .find(&at)
            .unwrap_or_else(|| panic!("no `{at}` in:\n{}", self.stderr))
    }
}

/// Where tests write their stack, relative to the workdir (short, so that
/// miette's wrapping at 80 columns never splits a location).
const STACK_PATH: &str = "stacks/bad.toml";

/// Writes `text` to [`STACK_PATH`] in a new workdir.
fn write_stack(name: &str, text: &str) -> Workdir {
    let dir = Workdir::new(&format!("validation-{name}"));
    std::fs::create_dir_all(dir.path.join("stacks")).unwrap();
    dir.write(STACK_PATH, text);
    dir
}

/// Runs `meshform validate <stack> [extra...]` on `text`, expecting exit 1.
fn validate_fails(name: &str, text: &str, extra: &[&str]) -> Failure {
    let dir = write_stack(name, text);
    let mut args = vec!["validate", STACK_PATH];
    args.extend_from_slice(extra);
    let out = expect_code(meshform(&dir.path, None, &args), 1);
    Failure {
        path: STACK_PATH.to_string(),
        text: text.to_string(),
        stderr: flat(&stderr(&out)),
        _dir: dir,
    }
}

#[test]
fn the_base_stack_is_valid() {
    let dir = write_stack("valid", VALID);
    let out = expect_code(meshform(&dir.path, None, &["validate", STACK_PATH]), 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("stack `validation` is valid (2 resources, 1 outputs)"),
        "{stdout}"
    );
}

#[test]
fn unknown_resource_type_suggests_the_near_miss() {
    let text = edit("type = \"aws.ec2.vpc\"", "type = \"aws.ec2.vpcc\"");
    // References to the broken resource are not reported a second time.
    validate_fails("unknown-type", &text, &[])
        .expect("\"aws.ec2.vpcc\"", 0, "unknown resource type `aws.ec2.vpcc`")
        .expect_help("did you mean `aws.ec2.vpc`?")
        .expect_count(1);

    let text = edit("type = \"aws.ec2.vpc\"", "type = \"aws.s3.bucket\"");
    validate_fails("unknown-type-far", &text, &[])
        .expect("\"aws.s3.bucket\"", 0, "unknown resource type `aws.s3.bucket`")
        .expect_help("run `meshform types` to list the known types")
        .expect_count(1);
}

#[test]
fn misspelled_attribute_suggests_the_right_name() {
    let text = edit(
        "cidr_block = \"10.192.10.0/24\"",
        "cidr_blok = \"10.192.10.0/24\"",
    );
    validate_fails("misspelled-attr", &text, &[])
        .expect(
            "cidr_blok",
            0,
            "unknown attribute `cidr_blok` for type `aws.ec2.subnet`",
        )
        .expect_help("did you mean `cidr_block`?")
        // The real attribute is then missing, reported at the resource name.
        .expect(
            "[resource.subnet]",
            "[resource.".len(),
            "resource `subnet` (aws.ec2.subnet) is missing required attribute `cidr_block`",
        )
        .expect_count(2);
}

#[test]
fn unknown_attribute_without_a_near_miss_lists_the_settable_ones() {
    let text = edit(
        "availability_zone = \"${az[0]}\"",
        "availability_zone = \"${az[0]}\"\ncolour = \"red\"",
    );
    let f = validate_fails("unknown-attr", &text, &[]);
    f.expect(
        "colour",
        0,
        "unknown attribute `colour` for type `aws.ec2.subnet`",
    )
    .expect_help(
        "`aws.ec2.subnet` accepts: tags, vpc_id, cidr_block, availability_zone, map_public_ip_on_launch",
    )
    .expect_count(1);
    // Computed attributes are not offered.
    assert!(!f.stderr.contains("arn,"), "{}", f.stderr);
}

#[test]
fn missing_required_attribute_is_located_at_the_resource_name() {
    let text = edit("availability_zone = \"${az[0]}\"\n", "");
    validate_fails("missing-required", &text, &[])
        .expect(
            "[resource.subnet]",
            "[resource.".len(),
            "resource `subnet` (aws.ec2.subnet) is missing required attribute `availability_zone`",
        )
        .expect_count(1);

    let text = edit("type = \"aws.ec2.subnet\"\n", "");
    validate_fails("missing-type", &text, &[])
        .expect(
            "[resource.subnet]",
            "[resource.".len(),
            "resource `subnet` is missing `type`, such as \"aws.ec2.vpc\"",
        )
        .expect_count(1);
}

#[test]
fn wrong_value_types_are_located_at_the_value() {
    let text = edit(
        "cidr_block = \"10.192.0.0/16\"",
        "cidr_block = \"10.192.0.0/16\"\nenable_dns_support = \"yes\"",
    );
    let text = edit_text(
        &text,
        "availability_zone = \"${az[0]}\"",
        "availability_zone = \"${az[0]}\"\ntags = [\"a\"]",
    );
    let text = edit_text(
        &text,
        "vpc_id = \"${vpc.id}\"",
        "vpc_id = \"${vpc.id}\"\nmap_public_ip_on_launch = \"${vpc.id}\"",
    );
    validate_fails("wrong-type", &text, &[])
        .expect(
            "\"yes\"",
            0,
            "wrong type for `enable_dns_support`: expected a boolean, found a string",
        )
        .expect(
            "[\"a\"]",
            0,
            "wrong type for `tags`: expected a table of strings, found a list",
        )
        .expect(
            "map_public_ip_on_launch = \"${vpc.id}\"",
            "map_public_ip_on_launch = \"".len(),
            "wrong type for `map_public_ip_on_launch`: expected a boolean, found `vpc.id`, which is a string",
        )
        .expect_count(3);
}

#[test]
fn invalid_cidr_blocks_say_what_is_wrong() {
    let text = edit("\"10.192.0.0/16\"", "\"10.192.300.0/16\"");
    let text = edit_text(&text, "\"10.192.10.0/24\"", "\"10.192.10.0/33\"");
    let text = format!(
        "{text}\n[resource.subnet2]\ntype = \"aws.ec2.subnet\"\nvpc_id = \"${{vpc.id}}\"\n\
         cidr_block = \"10.192.10.1/24\"\navailability_zone = \"${{az[1]}}\"\n"
    );
    validate_fails("cidr", &text, &[])
        .expect(
            "\"10.192.300.0/16\"",
            0,
            "invalid CIDR block `10.192.300.0/16` for `cidr_block`: `10.192.300.0` is not an IPv4 address",
        )
        .expect(
            "\"10.192.10.0/33\"",
            0,
            "invalid CIDR block `10.192.10.0/33` for `cidr_block`: prefix length 33 is more than 32",
        )
        .expect(
            "\"10.192.10.1/24\"",
            0,
            "invalid CIDR block `10.192.10.1/24` for `cidr_block`: host bits are set; the network is 10.192.10.0/24",
        )
        .expect_count(3);
}

#[test]
fn reference_to_an_unknown_resource_suggests_a_close_name() {
    let text = edit("vpc_id = \"${vpc.id}\"", "vpc_id = \"${vpcc.id}\"");
    validate_fails("unknown-ref", &text, &[])
        .expect("${vpcc.id}", 0, "reference to unknown resource `vpcc`")
        .expect_help("did you mean `vpc`?")
        .expect_count(1);

    let text = edit("vpc_id = \"${vpc.id}\"", "vpc_id = \"${network.id}\"");
    validate_fails("unknown-ref-far", &text, &[])
        .expect("${network.id}", 0, "reference to unknown resource `network`")
        .expect_help("no resource by that name is declared")
        .expect_count(1);
}

#[test]
fn reference_to_an_unknown_attribute_suggests_a_close_name() {
    // In an output, and inside a string template (located at its `${`).
    let text = edit("value = \"${vpc.id}\"", "value = \"${vpc.idd}\"");
    let text = edit_text(
        &text,
        "availability_zone = \"${az[0]}\"",
        "availability_zone = \"${az[0]}\"\ntags = { Name = \"net-${vpc.cidr_blocks}\" }",
    );
    validate_fails("unknown-attr-ref", &text, &[])
        .expect(
            "${vpc.cidr_blocks}",
            0,
            "`vpc` (aws.ec2.vpc) has no attribute `cidr_blocks`",
        )
        .expect("${vpc.idd}", 0, "`vpc` (aws.ec2.vpc) has no attribute `idd`")
        .expect_help("did you mean `vpc.id`?")
        .expect_help("did you mean `vpc.cidr_block`?")
        .expect_count(2);
}

#[test]
fn duplicate_resource_name_is_a_toml_error_at_the_second_table() {
    let text = format!("{VALID}\n[resource.vpc]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.193.0.0/16\"\n");
    let f = validate_fails("duplicate", &text, &[]);
    // `locate` needs a unique needle: the second header is the one followed
    // by the other CIDR block.
    let (line, col) = locate(
        &text,
        "[resource.vpc]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.193",
        "[resource.".len(),
    );
    let want = format!("× {}:{line}:{col}: invalid TOML: duplicate key", f.path);
    let first = f.stderr.find(&format!("× {}:", f.path)).unwrap();
    assert_eq!(
        f.stderr.find(&want),
        Some(first),
        "expected `{want}` first in:\n{}",
        f.stderr
    );
}

#[test]
fn dependency_cycle_lists_its_members() {
    // vpc -> subnet_a (reference) -> subnet_b (depends_on) -> vpc (depends_on).
    let text = edit("[resource.subnet]", "[resource.subnet_a]");
    let text = edit_text(
        &text,
        "type = \"aws.ec2.vpc\"",
        "type = \"aws.ec2.vpc\"\ndepends_on = [\"subnet_b\"]",
    );
    let text = format!(
        "{text}\n[resource.subnet_b]\ntype = \"aws.ec2.subnet\"\nvpc_id = \"${{vpc.id}}\"\n\
         cidr_block = \"10.192.11.0/24\"\navailability_zone = \"${{az[1]}}\"\ndepends_on = [\"subnet_a\"]\n"
    );
    validate_fails("cycle", &text, &[])
        .expect(
            "[resource.subnet_a]",
            "[resource.".len(),
            "dependency cycle: subnet_a -> subnet_b -> vpc -> subnet_a",
        )
        .expect_count(1);
}

#[test]
fn self_reference_is_reported_once_and_does_not_hide_another_cycle() {
    let text = edit(
        "tags = { Name = \"${var.name}\" }",
        "tags = { Name = \"${vpc.id}\" }",
    );
    validate_fails("self-ref", &text, &[])
        .expect(
            "${vpc.id}\" }",
            0,
            "dependency cycle: `vpc` refers to itself (`${vpc.id}`)",
        )
        .expect_count(1);

    let text = edit(
        "type = \"aws.ec2.vpc\"",
        "type = \"aws.ec2.vpc\"\ndepends_on = [\"vpc\"]",
    );
    validate_fails("self-dep", &text, &[])
        .expect("[\"vpc\"]", 1, "resource `vpc` cannot depend on itself")
        .expect_count(1);

    // A self-reference in `igw` sorts before the subnet/vpc cycle; both are reported.
    let text = edit(
        "type = \"aws.ec2.vpc\"",
        "type = \"aws.ec2.vpc\"\ndepends_on = [\"subnet\"]",
    );
    let text = format!(
        "{text}\n[resource.igw]\ntype = \"aws.ec2.internet_gateway\"\ntags = {{ Name = \"${{igw.id}}\" }}\n"
    );
    validate_fails("self-ref-and-cycle", &text, &[])
        .expect(
            "${igw.id}",
            0,
            "dependency cycle: `igw` refers to itself (`${igw.id}`)",
        )
        .expect(
            "[resource.subnet]",
            "[resource.".len(),
            "dependency cycle: subnet -> vpc -> subnet",
        )
        .expect_count(2);
}

#[test]
fn unknown_variable_suggests_a_declared_one() {
    let text = edit("\"${var.name}\"", "\"${var.nmae}\"");
    validate_fails("unknown-var", &text, &[])
        .expect("${var.nmae}", 0, "unknown variable `nmae`")
        .expect_help("did you mean `var.name`?")
        .expect_count(1);

    let text = edit("\"${var.name}\"", "\"x-${var.zone}\"");
    validate_fails("unknown-var-far", &text, &[])
        .expect("${var.zone}", 0, "unknown variable `zone`")
        .expect_help("declare it in [vars]")
        .expect_count(1);
}

#[test]
fn var_option_for_an_undeclared_variable() {
    validate_fails("var-undeclared", VALID, &["--var", "nmae=Other"])
        .expect_in_file("--var nmae: no such variable in [vars]")
        .expect_help("did you mean `name`?")
        .expect_count(1);

    let text = edit("[vars]\nname = \"Demo\"\nsubnet_count = 2\n", "");
    let text = edit_text(&text, "\"${var.name}\"", "\"Demo\"");
    validate_fails("var-no-vars", &text, &["--var", "name=Other"])
        .expect_in_file("--var name: the stack declares no variables")
        .expect_count(1);

    // A value of the wrong type is located at the variable's default.
    validate_fails("var-type", VALID, &["--var", "subnet_count=two"])
        .expect(
            "subnet_count = 2",
            "subnet_count = ".len(),
            "--var subnet_count=two: expected an integer, like this variable's default",
        )
        .expect_count(1);
}

#[test]
fn computed_attributes_cannot_be_set() {
    let text = edit(
        "type = \"aws.ec2.vpc\"",
        "type = \"aws.ec2.vpc\"\nid = \"vpc-0123\"",
    );
    let text = edit_text(
        &text,
        "vpc_id = \"${vpc.id}\"",
        "vpc_id = \"${vpc.id}\"\narn = \"arn:aws:ec2:x\"",
    );
    validate_fails("computed", &text, &[])
        .expect(
            "id = \"vpc-0123\"",
            0,
            "attribute `id` of `aws.ec2.vpc` is computed by the cloud and cannot be set",
        )
        .expect(
            "arn = ",
            0,
            "attribute `arn` of `aws.ec2.subnet` is computed by the cloud and cannot be set",
        )
        .expect_count(2);
}

#[test]
fn every_error_in_a_file_is_reported_in_file_order() {
    let text = edit(
        "type = \"aws.ec2.vpc\"",
        "type = \"aws.ec2.vpc\"\nenable_dns_hostname = true",
    );
    let text = edit_text(&text, "\"10.192.10.0/24\"", "\"10.192.10.0/33\"");
    let text = edit_text(&text, "vpc_id = \"${vpc.id}\"", "vpc_id = \"${vpc.idd}\"");
    let text = edit_text(&text, "\"${var.name}\"", "\"${var.nmae}\"");
    let text = format!("{text}\n[resource.gateway]\ntype = \"aws.ec2.internet_gatway\"\n");
    let f = validate_fails("many", &text, &[]);
    f.expect(
        "enable_dns_hostname",
        0,
        "unknown attribute `enable_dns_hostname` for type `aws.ec2.vpc`",
    )
    .expect_help("did you mean `enable_dns_hostnames`?")
    .expect("${var.nmae}", 0, "unknown variable `nmae`")
    .expect("${vpc.idd}", 0, "`vpc` (aws.ec2.vpc) has no attribute `idd`")
    .expect(
        "\"10.192.10.0/33\"",
        0,
        "invalid CIDR block `10.192.10.0/33` for `cidr_block`",
    )
    .expect(
        "\"aws.ec2.internet_gatway\"",
        0,
        "unknown resource type `aws.ec2.internet_gatway`",
    )
    .expect_help("did you mean `aws.ec2.internet_gateway`?")
    .expect_count(5);
    let order = [
        f.position_of("enable_dns_hostname", 0),
        f.position_of("${var.nmae}", 0),
        f.position_of("${vpc.idd}", 0),
        f.position_of("\"10.192.10.0/33\"", 0),
        f.position_of("\"aws.ec2.internet_gatway\"", 0),
    ];
    assert!(
        order.is_sorted(),
        "errors out of file order: {order:?}\n{}",
        f.stderr
    );
}

#[test]
fn rule_lists_mixing_literal_and_referencing_rules_are_valid() {
    let text = format!(
        "{VALID}\n[resource.web]\ntype = \"aws.ec2.security_group\"\nname = \"web\"\nvpc_id = \"${{vpc.id}}\"\n\
         ingress = [\n  {{ protocol = \"tcp\", from_port = 80, to_port = 80, cidr_blocks = [\"0.0.0.0/0\"] }},\n  \
         {{ protocol = \"tcp\", from_port = 443, to_port = 443, cidr_blocks = [\"${{vpc.cidr_block}}\"] }},\n]\n"
    );
    let dir = write_stack("rules", &text);
    expect_code(meshform(&dir.path, None, &["validate", STACK_PATH]), 0);

    // An item's own problems are still found, whichever form the item takes.
    let bad = edit_text(
        &text,
        "protocol = \"tcp\", from_port = 80",
        "protocl = \"tcp\", from_port = 80",
    );
    validate_fails("rules-bad", &bad, &[])
        .expect(
            "ingress = [",
            "ingress = ".len(),
            "unknown attribute `protocl` in `ingress`",
        )
        .expect(
            "ingress = [",
            "ingress = ".len(),
            "an item of `ingress` is missing required attribute `protocol`",
        )
        .expect_count(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_of_an_invalid_stack_creates_nothing() {
    let moto = Moto::start();
    // The VPC is valid; the subnet after it is not. Nothing may be created.
    let text = edit("\"10.192.10.0/24\"", "\"10.192.10.1/24\"");
    let dir = write_stack("apply", &text);
    let cmd = meshform(&dir.path, Some(&moto), &["apply", "--auto-approve", STACK_PATH]);
    let out = tokio::task::spawn_blocking(move || expect_code(cmd, 1))
        .await
        .unwrap();
    let (line, col) = locate(&text, "\"10.192.10.1/24\"", 0);
    let err = flat(&stderr(&out));
    assert!(
        err.contains(&format!(
            "{STACK_PATH}:{line}:{col}: invalid CIDR block `10.192.10.1/24`"
        )),
        "{err}"
    );
    assert!(!dir.state_file("validation").exists(), "a state file was written");
    assert!(
        !dir.path.join(".meshform").exists(),
        "the state directory was created"
    );

    let ec2 = moto.ec2().await;
    // The server answers (moto has its default VPC)...
    let all = ec2.describe_vpcs().send().await.unwrap();
    assert!(!all.vpcs().is_empty());
    // ...and holds nothing meshform tagged.
    let tagged = Filter::builder().name("tag-key").values(TAG_STACK).build();
    let vpcs = ec2.describe_vpcs().filters(tagged.clone()).send().await.unwrap();
    assert!(vpcs.vpcs().is_empty(), "VPCs were created: {:?}", vpcs.vpcs());
    let subnets = ec2.describe_subnets().filters(tagged).send().await.unwrap();
    assert!(
        subnets.subnets().is_empty(),
        "subnets were created: {:?}",
        subnets.subnets()
    );
}
