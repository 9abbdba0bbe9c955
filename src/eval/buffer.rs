//! Buffered deserialization: a value read whole before its type is known
//! (an evaluator's fields before its `type:`, a model's section before the
//! model is looked up) is deserialized again into that type, with the error
//! type, and so the wording, of the format it came from.
//!
//! serde's derived internally tagged enums do the same with a private
//! buffer; the workload models are looked up by name at run time, so knobs
//! buffers in a [`serde_yaml::Value`] and replays it through [`Buffered`],
//! which calls a visitor exactly as serde's own buffer does.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Unexpected, Visitor};
use serde_yaml::Value;

/// A buffered value as a deserializer whose errors are `E`.
pub(crate) struct Buffered<E> {
    value: Value,
    error: PhantomData<E>,
}

impl<E> Buffered<E> {
    pub(crate) fn new(value: Value) -> Self {
        Buffered { value, error: PhantomData }
    }
}

/// How a visitor's error names a buffered value.
fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Sequence(_) => Unexpected::Seq,
        Value::Mapping(_) => Unexpected::Map,
        Value::Tagged(_) => Unexpected::Enum,
    }
}

impl<'de, E: de::Error> IntoDeserializer<'de, E> for Buffered<E> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de, E: de::Error> Deserializer<'de> for Buffered<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                _ => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_string(s),
            Value::Sequence(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(Buffered::new));
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Value::Mapping(entries) => {
                let mut map =
                    MapDeserializer::new(entries.into_iter().map(|(k, v)| (Buffered::new(k), Buffered::new(v))));
                let out = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(out)
            }
            // serde's buffer refuses enum input the same way.
            Value::Tagged(_) => Err(E::custom("untagged and internally tagged enums do not support enum input")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.value {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Mapping(entries) if entries.len() == 1 => {
                let map = MapDeserializer::new(entries.into_iter().map(|(k, v)| (Buffered::new(k), Buffered::new(v))));
                visitor.visit_enum(MapAccessDeserializer::new(map))
            }
            Value::Mapping(_) => Err(E::invalid_value(Unexpected::Map, &"map with a single key")),
            other => Err(E::invalid_type(unexpected(&other), &"string or map")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// A deserialization error kept in parts, so that it can be raised again as
/// another format's error, worded as that format words it.
#[derive(Debug)]
pub(crate) enum Captured {
    Custom(String),
    InvalidType(Owned, String),
    InvalidValue(Owned, String),
    InvalidLength(usize, String),
    UnknownVariant(String, &'static [&'static str]),
    UnknownField(String, &'static [&'static str]),
    MissingField(&'static str),
    DuplicateField(&'static str),
}

/// An owned [`Unexpected`].
#[derive(Debug)]
pub(crate) enum Owned {
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Char(char),
    Str(String),
    Bytes(Vec<u8>),
    Unit,
    Option,
    NewtypeStruct,
    Seq,
    Map,
    Enum,
    UnitVariant,
    NewtypeVariant,
    TupleVariant,
    StructVariant,
    Other(String),
}

impl From<Unexpected<'_>> for Owned {
    fn from(u: Unexpected<'_>) -> Owned {
        match u {
            Unexpected::Bool(b) => Owned::Bool(b),
            Unexpected::Unsigned(v) => Owned::Unsigned(v),
            Unexpected::Signed(v) => Owned::Signed(v),
            Unexpected::Float(v) => Owned::Float(v),
            Unexpected::Char(c) => Owned::Char(c),
            Unexpected::Str(s) => Owned::Str(s.to_string()),
            Unexpected::Bytes(b) => Owned::Bytes(b.to_vec()),
            Unexpected::Unit => Owned::Unit,
            Unexpected::Option => Owned::Option,
            Unexpected::NewtypeStruct => Owned::NewtypeStruct,
            Unexpected::Seq => Owned::Seq,
            Unexpected::Map => Owned::Map,
            Unexpected::Enum => Owned::Enum,
            Unexpected::UnitVariant => Owned::UnitVariant,
            Unexpected::NewtypeVariant => Owned::NewtypeVariant,
            Unexpected::TupleVariant => Owned::TupleVariant,
            Unexpected::StructVariant => Owned::StructVariant,
            Unexpected::Other(s) => Owned::Other(s.to_string()),
        }
    }
}

impl Owned {
    fn get(&self) -> Unexpected<'_> {
        match self {
            Owned::Bool(b) => Unexpected::Bool(*b),
            Owned::Unsigned(v) => Unexpected::Unsigned(*v),
            Owned::Signed(v) => Unexpected::Signed(*v),
            Owned::Float(v) => Unexpected::Float(*v),
            Owned::Char(c) => Unexpected::Char(*c),
            Owned::Str(s) => Unexpected::Str(s),
            Owned::Bytes(b) => Unexpected::Bytes(b),
            Owned::Unit => Unexpected::Unit,
            Owned::Option => Unexpected::Option,
            Owned::NewtypeStruct => Unexpected::NewtypeStruct,
            Owned::Seq => Unexpected::Seq,
            Owned::Map => Unexpected::Map,
            Owned::Enum => Unexpected::Enum,
            Owned::UnitVariant => Unexpected::UnitVariant,
            Owned::NewtypeVariant => Unexpected::NewtypeVariant,
            Owned::TupleVariant => Unexpected::TupleVariant,
            Owned::StructVariant => Unexpected::StructVariant,
            Owned::Other(s) => Unexpected::Other(s),
        }
    }
}

impl Captured {
    /// The same error in the error type `E`.
    pub(crate) fn raise<E: de::Error>(&self) -> E {
        match self {
            Captured::Custom(m) => E::custom(m),
            Captured::InvalidType(u, exp) => E::invalid_type(u.get(), &exp.as_str()),
            Captured::InvalidValue(u, exp) => E::invalid_value(u.get(), &exp.as_str()),
            Captured::InvalidLength(n, exp) => E::invalid_length(*n, &exp.as_str()),
            Captured::UnknownVariant(v, expected) => E::unknown_variant(v, expected),
            Captured::UnknownField(f, expected) => E::unknown_field(f, expected),
            Captured::MissingField(f) => E::missing_field(f),
            Captured::DuplicateField(f) => E::duplicate_field(f),
        }
    }
}

impl de::Error for Captured {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Captured::Custom(msg.to_string())
    }
    fn invalid_type(unexp: Unexpected, exp: &dyn de::Expected) -> Self {
        Captured::InvalidType(unexp.into(), exp.to_string())
    }
    fn invalid_value(unexp: Unexpected, exp: &dyn de::Expected) -> Self {
        Captured::InvalidValue(unexp.into(), exp.to_string())
    }
    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        Captured::InvalidLength(len, exp.to_string())
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Captured::UnknownVariant(variant.to_string(), expected)
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Captured::UnknownField(field.to_string(), expected)
    }
    fn missing_field(field: &'static str) -> Self {
        Captured::MissingField(field)
    }
    fn duplicate_field(field: &'static str) -> Self {
        Captured::DuplicateField(field)
    }
}

impl fmt::Display for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // serde's plain error words every kind the default way.
        self.raise::<de::value::Error>().fmt(f)
    }
}

impl std::error::Error for Captured {}
