//! MarketStore's msgpack-RPC 2.0 envelope, in msgpack (`application/x-msgpack`) or JSON
//! (`application/json`), with `rmp-serde` and `serde_json`:
//! - request `{jsonrpc: "2.0", method, params, id}`; `params` is the method's object,
//!   or an array holding it (as gorilla's rpc2 codec accepts);
//! - reply `{jsonrpc: "2.0", result, id}`, or `{jsonrpc: "2.0", error: {code, message,
//!   data}, id}` with HTTP 200, as MarketStore answers a failed call;
//! - column bytes (`data`) are msgpack `bin`, or base64 text in JSON (as Go encodes
//!   `[]byte`).

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A body that is not the codec's format (-32700).
pub const ERR_PARSE: i32 = -32700;
/// Not a msgpack-RPC 2.0 request, or params of the wrong shape (-32600).
pub const ERR_INVALID_REQUEST: i32 = -32600;
/// No such method (-32601).
pub const ERR_NO_METHOD: i32 = -32601;
/// The method failed (-32000), as MarketStore reports every service error.
pub const ERR_SERVER: i32 = -32000;

/// The two codecs MarketStore's `/rpc` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// `application/x-msgpack`.
    Msgpack,
    /// `application/json` (any charset).
    Json,
}

impl Codec {
    /// The codec of a `Content-Type`, if it is one of the two.
    pub fn of(content_type: &str) -> Option<Self> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-msgpack" | "application/msgpack" => Some(Self::Msgpack),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The reply's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Msgpack => "application/x-msgpack",
            Self::Json => "application/json",
        }
    }

    /// `body` as a `T`; the error says where it went wrong.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, String> {
        match self {
            Self::Msgpack => rmp_serde::from_slice(body).map_err(|e| e.to_string()),
            Self::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
        }
    }

    /// `v` encoded (maps with field names, as MarketStore's structs encode).
    pub fn encode<T: Serialize>(self, v: &T) -> Vec<u8> {
        let r = match self {
            Self::Msgpack => rmp_serde::to_vec_named(v).map_err(|e| e.to_string()),
            Self::Json => serde_json::to_vec(v).map_err(|e| e.to_string()),
        };
        r.unwrap_or_else(|e| {
            // Our own reply types always encode; say so in the codec's own words if not.
            tracing::error!(error = %e, "encoding a MarketStore reply failed");
            let fallback = Reply::<()>::error(None, ERR_SERVER, format!("encoding the reply: {e}"));
            match self {
                Self::Msgpack => rmp_serde::to_vec_named(&fallback).unwrap_or_default(),
                Self::Json => serde_json::to_vec(&fallback).unwrap_or_default(),
            }
        })
    }
}

/// The request envelope, its params not decoded yet.
#[derive(Deserialize)]
pub struct Head {
    /// Must be "2.0".
    #[serde(default)]
    pub jsonrpc: Option<String>,
    /// `DataService.Query`, ...
    #[serde(default)]
    pub method: Option<String>,
    /// Copied to the reply as it came; `null` (a notification) gets no reply body.
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    params: Option<IgnoredAny>,
}

/// The request envelope with the method's params.
#[derive(Deserialize)]
pub struct WithParams<T> {
    /// The params: absent is the method's default.
    #[serde(default = "Option::default")]
    pub params: Option<Params<T>>,
}

/// A method's params: the object, or an array whose first item is the object.
pub struct Params<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Params<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Params<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the method's params: an object, or an array holding it")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(a)).map(Params)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                let first = a.next_element::<T>()?.ok_or_else(|| {
                    serde::de::Error::custom("params is an empty array: send the method's object")
                })?;
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Params(first))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The error object of a failed call.
#[derive(Clone, Debug, Serialize)]
pub struct RpcError {
    /// One of the `ERR_*` codes.
    pub code: i32,
    /// What happened and what to do.
    pub message: String,
    /// Always `null` here (MarketStore puts the request in it on parse errors).
    pub data: Option<()>,
}

/// The reply envelope.
#[derive(Serialize)]
pub struct Reply<T> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<RpcError>,
    id: Option<serde_json::Value>,
}

impl<T> Reply<T> {
    /// A result.
    pub fn ok(id: Option<serde_json::Value>, result: T) -> Self {
        Self {
            jsonrpc: "2.0",
            result: Some(result),
            error: None,
            id,
        }
    }

    /// An error.
    pub fn error(id: Option<serde_json::Value>, code: i32, message: impl Into<String>) -> Self {
        Self {
            jsonrpc: "2.0",
            result: None,
            error: Some(RpcError {
                code,
                message: message.into(),
                data: None,
            }),
            id,
        }
    }
}

/// One column's bytes: msgpack `bin`, or base64 text in JSON. Decodes from either, or
/// from an array of byte values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnBytes(pub Vec<u8>);

impl Serialize for ColumnBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            use base64::Engine;
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ColumnBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ColumnBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("column bytes (msgpack bin, or base64 text)")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ColumnBytes, E> {
                Ok(ColumnBytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ColumnBytes, E> {
                Ok(ColumnBytes(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ColumnBytes, E> {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(ColumnBytes)
                    .map_err(|e| E::custom(format!("column data is not base64: {e}")))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<ColumnBytes, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ColumnBytes(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Default, Debug, PartialEq)]
    struct P {
        #[serde(default)]
        format: String,
    }

    #[test]
    fn params_are_an_object_or_an_array_holding_it_in_both_codecs() {
        for body in [
            serde_json::json!({"jsonrpc": "2.0", "method": "m", "id": "1", "params": {"format": "tbk"}}),
            serde_json::json!({"jsonrpc": "2.0", "method": "m", "id": 1, "params": [{"format": "tbk"}]}),
        ] {
            let json = serde_json::to_vec(&body).unwrap();
            let mp = rmp_serde::to_vec_named(&body).unwrap();
            for (codec, bytes) in [(Codec::Json, &json), (Codec::Msgpack, &mp)] {
                let head: Head = codec.decode(bytes).unwrap();
                assert_eq!(head.method.as_deref(), Some("m"));
                let p: WithParams<P> = codec.decode(bytes).unwrap();
                assert_eq!(p.params.unwrap().0.format, "tbk");
            }
        }
        assert!(Codec::Msgpack.decode::<Head>(b"\xc1garbage").is_err());
        assert_eq!(
            Codec::of("application/json;charset=UTF-8"),
            Some(Codec::Json)
        );
        assert_eq!(Codec::of("text/plain"), None);
    }

    #[test]
    fn column_bytes_are_bin_in_msgpack_and_base64_in_json() {
        let c = ColumnBytes(vec![1, 2, 255]);
        let mp = rmp_serde::to_vec_named(&c).unwrap();
        assert_eq!(mp, [0xc4, 3, 1, 2, 255]);
        let back: ColumnBytes = rmp_serde::from_slice(&mp).unwrap();
        assert_eq!(back, c);
        let js = serde_json::to_string(&c).unwrap();
        assert_eq!(js, "\"AQL/\"");
        assert_eq!(serde_json::from_str::<ColumnBytes>(&js).unwrap(), c);
        assert_eq!(serde_json::from_str::<ColumnBytes>("[1,2,255]").unwrap(), c);
    }
}
