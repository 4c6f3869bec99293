//! Fallible operators: `try_map`, `try_map_values`, `try_filter` and
//! `try_flat_map` take closures that return `Result<_, OpError>`. The
//! error's [`weir_core::Failure`] class decides the record's fate: a
//! permanent or validation failure dead-letters it at once (kinds
//! `permanent`, `validation`); a retryable one is dead-lettered with kind
//! `retryable`. Like every failure of a record, it drops the record's
//! outputs and store writes: a record is processed completely or not at
//! all.

use std::sync::Arc;

use weir_core::OpError;

use crate::builder::{same_codec, Stream};
use crate::graph::{boxed, take, Emit, Item, Op};

impl<K, V> Stream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Turns each record into zero or more records, or fails it.
    ///
    /// # Examples
    /// ```
    /// use weir_core::{OpError, Str};
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("lines", Str, Str)
    ///     .try_flat_map(|k, line: String| {
    ///         if line.is_empty() {
    ///             return Err(OpError::validation("an empty line"));
    ///         }
    ///         Ok(line.split(' ').map(|w| (k.clone(), w.to_string())).collect::<Vec<_>>())
    ///     })
    ///     .to("words");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn try_flat_map<K2, V2, I>(
        &self,
        f: impl Fn(K, V) -> Result<I, OpError> + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.fallible("try_flat_map", f)
    }

    fn fallible<K2, V2, I>(
        &self,
        kind: &'static str,
        f: impl Fn(K, V) -> Result<I, OpError> + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
        I: IntoIterator<Item = (K2, V2)>,
    {
        let op = Op::FlatMap(Arc::new(move |mut it: Item, emit: &mut Emit<'_>| {
            let k = take::<K>(&mut it.key);
            let v = take::<V>(&mut it.value);
            for (k2, v2) in f(k, v)? {
                emit(Item {
                    key: boxed(k2),
                    value: boxed(v2),
                    timestamp: it.timestamp,
                    headers: it.headers.clone(),
                })?;
            }
            Ok(())
        }));
        self.child(
            kind,
            op,
            same_codec::<K, K2>(&self.key_codec),
            same_codec::<V, V2>(&self.value_codec),
        )
    }

    /// Replaces each record's key and value, or fails it.
    pub fn try_map<K2, V2>(
        &self,
        f: impl Fn(K, V) -> Result<(K2, V2), OpError> + Send + Sync + 'static,
    ) -> Stream<K2, V2>
    where
        K2: Clone + Send + 'static,
        V2: Clone + Send + 'static,
    {
        self.fallible("try_map", move |k, v| f(k, v).map(Some))
    }

    /// Replaces each record's value, or fails it; keeps the key (and its
    /// codec).
    ///
    /// # Examples
    /// ```
    /// use weir_core::{Json, OpError, Str};
    /// use weir_dsl::TopologyBuilder;
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("amounts", Str, Str)
    ///     .try_map_values(|v: String| {
    ///         v.parse::<u64>()
    ///             .map_err(|e| OpError::validation(e).at_field("/amount"))
    ///     })
    ///     .with_value_codec(Json::<u64>::new())
    ///     .to("parsed");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn try_map_values<V2>(
        &self,
        f: impl Fn(V) -> Result<V2, OpError> + Send + Sync + 'static,
    ) -> Stream<K, V2>
    where
        V2: Clone + Send + 'static,
    {
        let s = self.fallible("try_map_values", move |k, v| f(v).map(|v2| Some((k, v2))));
        Stream {
            key_codec: self.key_codec.clone(),
            ..s
        }
    }

    /// Keeps the records for which `predicate` is `Ok(true)`, or fails
    /// them.
    pub fn try_filter(
        &self,
        predicate: impl Fn(&K, &V) -> Result<bool, OpError> + Send + Sync + 'static,
    ) -> Stream<K, V> {
        self.fallible("try_filter", move |k, v| {
            Ok(predicate(&k, &v)?.then_some((k, v)))
        })
    }
}
