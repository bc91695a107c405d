//! A tolerant JSON reader that collects every error instead of stopping at the first.
//!
//! The model is decoded by hand rather than with `serde` derive because a user
//! applying a document wants all of its problems at once, each with a JSON pointer.

use serde_json::{Map, Value};

use crate::error::{FieldError, escape_pointer_token};

/// Collects errors for one document.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, pointer: &str, detail: impl Into<String>) {
        self.0.push(FieldError { pointer: pointer.to_string(), detail: detail.into() });
    }
}

/// Reads the fields of one JSON object at `pointer`, recording what it has consumed
/// so that unknown fields can be reported.
pub(crate) struct ObjectReader<'a> {
    pub obj: &'a Map<String, Value>,
    pub pointer: String,
    used: Vec<&'static str>,
}

/// A short description of a JSON value's type for error messages (`an object`, `a number`…).
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> ObjectReader<'a> {
    /// Starts reading `value` as an object; records an error and returns `None` when it is not one.
    pub fn new(value: &'a Value, pointer: &str, errs: &mut Errors) -> Option<Self> {
        match value {
            Value::Object(obj) => Some(ObjectReader { obj, pointer: pointer.to_string(), used: Vec::new() }),
            other => {
                errs.push(pointer, format!("expected an object, found {}", type_name(other)));
                None
            }
        }
    }

    /// The pointer of one field of this object.
    pub fn at(&self, key: &str) -> String {
        format!("{}/{}", self.pointer, escape_pointer_token(key))
    }

    /// A field's raw value, marked as known.
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A required string field.
    pub fn req_str(&mut self, key: &'static str, errs: &mut Errors) -> Option<String> {
        match self.raw(key) {
            None => {
                errs.push(&self.at(key), format!("`{key}` is required"));
                None
            }
            Some(v) => self.as_str(key, v, errs),
        }
    }

    /// An optional string field.
    pub fn opt_str(&mut self, key: &'static str, errs: &mut Errors) -> Option<String> {
        let v = self.raw(key)?;
        self.as_str(key, v, errs)
    }

    fn as_str(&self, key: &str, v: &Value, errs: &mut Errors) -> Option<String> {
        match v {
            Value::String(s) => Some(s.trim().to_string()),
            other => {
                errs.push(&self.at(key), format!("expected a string, found {}", type_name(other)));
                None
            }
        }
    }

    /// An optional non-negative number given as a JSON number or a numeric string
    /// (the paper's listings write numbers as strings).
    pub fn opt_number(&mut self, key: &'static str, errs: &mut Errors) -> Option<f64> {
        let v = self.raw(key)?;
        let at = self.at(key);
        let n = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errs.push(&at, format!("expected a number, found the string {s:?}"));
                    return None;
                }
            },
            other => {
                errs.push(&at, format!("expected a number, found {}", type_name(other)));
                return None;
            }
        };
        match n {
            Some(n) if n.is_finite() && n >= 0.0 => Some(n),
            _ => {
                errs.push(&at, "must be a finite number >= 0");
                None
            }
        }
    }

    /// An optional non-negative integer, as a JSON number or a numeric string.
    pub fn opt_u64(&mut self, key: &'static str, errs: &mut Errors) -> Option<u64> {
        let v = self.raw(key)?;
        let at = self.at(key);
        let parsed = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            errs.push(&at, format!("expected a non-negative integer, found {}", describe(v)));
        }
        parsed
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, key: &'static str, errs: &mut Errors) -> Option<bool> {
        match self.raw(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                errs.push(&self.at(key), format!("expected a boolean, found {}", type_name(other)));
                None
            }
        }
    }

    /// An optional array; returns its items with their pointers.
    pub fn opt_array(&mut self, key: &'static str, errs: &mut Errors) -> Vec<(String, &'a Value)> {
        let Some(v) = self.raw(key) else { return Vec::new() };
        let at = self.at(key);
        match v {
            Value::Array(items) => items.iter().enumerate().map(|(i, v)| (format!("{at}/{i}"), v)).collect(),
            other => {
                errs.push(&at, format!("expected an array, found {}", type_name(other)));
                Vec::new()
            }
        }
    }

    /// An optional array of strings.
    pub fn opt_str_array(&mut self, key: &'static str, errs: &mut Errors) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (ptr, v) in self.opt_array(key, errs) {
            match v {
                Value::String(s) => out.push((ptr, s.trim().to_string())),
                other => errs.push(&ptr, format!("expected a string, found {}", type_name(other))),
            }
        }
        out
    }

    /// An optional open object (free-form key/value metainformation).
    pub fn opt_map(&mut self, key: &'static str, errs: &mut Errors) -> Map<String, Value> {
        match self.raw(key) {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                errs.push(&self.at(key), format!("expected an object, found {}", type_name(other)));
                Map::new()
            }
        }
    }

    /// Reports every field that was not read (typos are errors, not silently ignored).
    pub fn deny_unknown(&self, errs: &mut Errors) {
        for key in self.obj.keys() {
            if !self.used.iter().any(|u| u == key) {
                errs.push(&self.at(key), format!("unknown field `{key}`"));
            }
        }
    }

    /// Fields that were not read, for blocks that keep extra keys.
    pub fn rest(&self) -> Map<String, Value> {
        self.obj
            .iter()
            .filter(|(k, _)| !self.used.iter().any(|u| u == k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {s:?}"),
        Value::Number(n) => format!("the number {n}"),
        other => type_name(other).to_string(),
    }
}
