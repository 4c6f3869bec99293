//! Topology parameters: typed values a topology declares (name, default,
//! help) and a deployment sets (`[params]` / `WEIR_PARAMS__<NAME>`).
//!
//! A [`Param`] handle is captured by the closures that need it; the runtime
//! sets every configured value once, before the first record, and `get`
//! returns it (or the default). `describe` lists the declared parameters.

use std::fmt::Display;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

/// A type a parameter can have: parsed from configuration text.
pub trait ParamValue: FromStr + Display + Clone + Send + Sync + 'static {
    /// The type's name, for `describe` and error messages.
    const TYPE: &'static str;
}

macro_rules! param_value {
    ($($t:ty => $name:literal),*) => {
        $(impl ParamValue for $t {
            const TYPE: &'static str = $name;
        })*
    };
}

param_value!(u64 => "u64", u32 => "u32", i64 => "i64", f64 => "f64", bool => "bool", String => "string");

/// A typed handle on a declared parameter. Cheap to clone.
pub struct Param<T> {
    name: Arc<str>,
    default: T,
    value: Arc<OnceLock<T>>,
}

impl<T: Clone> Clone for Param<T> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            default: self.default.clone(),
            value: self.value.clone(),
        }
    }
}

impl<T: ParamValue> Param<T> {
    /// The configured value, or the default when none was configured.
    pub fn get(&self) -> T {
        self.value.get().unwrap_or(&self.default).clone()
    }

    /// The parameter's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Parses configuration text into a parameter's cell.
pub(crate) type ParamSetter = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// A declared parameter, type-erased: what `describe` shows and what the
/// runtime sets.
#[derive(Clone)]
pub(crate) struct ParamSpec {
    pub name: String,
    pub kind: &'static str,
    pub default: String,
    pub help: String,
    pub set: ParamSetter,
}

impl<T: ParamValue> Param<T> {
    pub(crate) fn declare(name: &str, default: T, help: &str) -> (Self, ParamSpec) {
        let value: Arc<OnceLock<T>> = Arc::new(OnceLock::new());
        let cell = value.clone();
        let param_name = name.to_string();
        let set = Arc::new(move |text: &str| {
            let v: T = text.trim().parse().map_err(|_| {
                format!(
                    "{text:?} is not a valid {} (parameter {param_name})",
                    T::TYPE
                )
            })?;
            cell.set(v)
                .map_err(|_| format!("parameter {param_name} is already set"))
        });
        let spec = ParamSpec {
            name: name.to_string(),
            kind: T::TYPE,
            default: default.to_string(),
            help: help.to_string(),
            set,
        };
        (
            Param {
                name: name.into(),
                default,
                value,
            },
            spec,
        )
    }
}

/// A declared parameter as `describe` lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ParamDescription {
    /// Its name (`[params]` key; `WEIR_PARAMS__<NAME>` in upper case).
    pub name: String,
    /// Its type (`u64`, `f64`, `bool`, `string`, …).
    pub kind: String,
    /// Its default, as text.
    pub default: String,
    /// What it does.
    pub help: String,
}
