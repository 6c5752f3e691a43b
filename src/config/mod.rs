//! The stack language: TOML files with `[stack]`, `[vars]` (defaults and
//! declarations, see [`vars`]),
//! `[resource.<name>]` and `[output.<name>]`, loaded with source spans and
//! validated against the resource kinds' schemas.
//!
//! ```toml
//! [stack]
//! name = "demo"
//! region = "us-west-2"
//!
//! [vars]
//! prefix = "Demo"
//!
//! [vars.subnet_count]        # a declaration: type, bounds, description
//! default = 2
//! type = "integer"
//! min = 1
//! max = 4
//!
//! [resource.vpc]
//! type = "aws.ec2.vpc"
//! cidr_block = "10.0.0.0/16"
//! tags = { Name = "${var.prefix}" }
//!
//! [resource.subnet]
//! type = "aws.ec2.subnet"
//! vpc_id = "${vpc.id}"
//! cidr_block = "10.0.1.0/24"
//! availability_zone = "${az[0]}"
//!
//! [output.vpc_id]
//! value = "${vpc.id}"
//! ```

pub mod diagnostics;
pub mod expr;
mod load;
pub mod model;
mod shift_decl;
mod validate;
pub mod vars;

pub use diagnostics::{ConfigError, Located, SourceFile, Span, suggest};
pub use expr::{Expr, Part, RefAt, Reference};
pub use load::{LoadOptions, load, load_str};
pub use model::{Attr, Output, Resource, Stack};
pub use validate::parse_cidr;
pub use vars::{VarDecl, VarType};
