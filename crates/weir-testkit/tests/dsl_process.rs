//! `process` nodes with stores through the TopologyTestDriver: per-key
//! counts, dead-lettered records dropping their own writes, per-task
//! instances, stream time, and build errors naming the store.

use proptest::prelude::*;
use weir_core::{Json, ProcessError, Str};
use weir_dsl::{BuildError, Processor, ProcessorContext, Store, Topology, TopologyBuilder};
use weir_testkit::TopologyTestDriver;

/// Counts records per key in store `counts`; a value "fail" is refused
/// after its write, so the write must be dropped.
fn counting() -> (Topology, Store<String, u64>) {
    let b = TopologyBuilder::new();
    let counts = b.key_value_store("counts", Str, Json::<u64>::new());
    let c = counts.clone();
    b.stream("in", Str, Str)
        .process("count", &[&counts], move |ctx, k: String, v: String| {
            let mut store = ctx.store(&c)?;
            let n = store.get(&k)?.unwrap_or(0) + 1;
            store.put(&k, &n)?;
            if v == "fail" {
                return Err(ProcessError::operator("refused"));
            }
            ctx.forward(k, n);
            Ok(())
        })
        .with_value_codec(Json::<u64>::new())
        .to("out");
    (b.build().unwrap(), counts)
}

#[test]
fn a_process_node_counts_per_key_in_its_store() {
    let (t, counts) = counting();
    let d = TopologyTestDriver::new(t);
    let input = d.input_topic("in", Str, Str);
    for k in ["a", "b", "a", "a"] {
        input.pipe_input(k.into(), "x".into());
    }
    let out = d.output_topic("out", Str, Json::<u64>::new());
    assert_eq!(
        out.read_key_values_to_list(),
        vec![
            ("a".to_string(), 1),
            ("b".to_string(), 1),
            ("a".to_string(), 2),
            ("a".to_string(), 3)
        ]
    );
    assert_eq!(d.store_get(&counts, &"a".to_string()), Some(3));
    assert_eq!(
        d.store_entries(&counts),
        vec![("a".to_string(), 3), ("b".to_string(), 1)]
    );
}

#[test]
fn a_refused_record_is_dead_lettered_and_its_writes_dropped() {
    let (t, counts) = counting();
    let d = TopologyTestDriver::new(t);
    let input = d.input_topic("in", Str, Str);
    input.pipe_input("a".into(), "x".into());
    input.pipe_input("a".into(), "fail".into());
    input.pipe_input("a".into(), "x".into());
    let dls = d.dead_letters();
    assert_eq!(dls.len(), 1);
    assert_eq!(
        dls[0].headers.get_str(weir_core::dlq_headers::ERROR_KIND),
        Some("operator")
    );
    assert_eq!(
        dls[0].headers.get_str(weir_core::dlq_headers::NODE),
        Some("count")
    );
    assert_eq!(d.store_get(&counts, &"a".to_string()), Some(2));
}

/// A processor with a per-task field and lifecycle hooks.
struct Sequencer {
    next: u64,
    inits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Processor<String, String, String, String> for Sequencer {
    fn init(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessError> {
        self.inits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        key: String,
        value: String,
    ) -> Result<(), ProcessError> {
        self.next += 1;
        let st = ctx.stream_time().unwrap_or(-1);
        ctx.forward(key, format!("{value}#{}@{st}", self.next));
        Ok(())
    }
}

#[test]
fn process_with_makes_one_instance_per_task_and_sees_stream_time() {
    let inits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b = TopologyBuilder::new();
    let i2 = inits.clone();
    b.stream("in", Str, Str)
        .process_with("seq", &[], move || Sequencer {
            next: 0,
            inits: i2.clone(),
        })
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    let input = d.input_topic("in", Str, Str);
    input.pipe_input_at("k".into(), "a".into(), 10);
    input.pipe_input_at("k".into(), "b".into(), 5);
    input.pipe_input_at("k".into(), "c".into(), 20);
    assert_eq!(
        d.output_topic("out", Str, Str).read_values_to_list(),
        vec!["a#1@10", "b#2@10", "c#3@20"]
    );
    assert_eq!(inits.load(std::sync::atomic::Ordering::SeqCst), 1);
    d.advance_stream_time(100);
    assert_eq!(d.stream_time("in"), Some(100));
    d.advance_stream_time(50);
    assert_eq!(
        d.stream_time("in"),
        Some(100),
        "stream time never goes back"
    );
}

#[test]
fn build_errors_name_the_store() {
    let b = TopologyBuilder::new();
    let _ = b.key_value_store("s", Str, Str);
    let _ = b.key_value_store("s", Str, Str);
    b.stream("in", Str, Str).to("out");
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::DuplicateStore { store: "s".into() }
    );

    let b = TopologyBuilder::new();
    let _ = b.key_value_store("bad name", Str, Str);
    b.stream("in", Str, Str).to("out");
    assert!(matches!(
        b.build().unwrap_err(),
        BuildError::InvalidStoreName { .. }
    ));

    // Undeclared: a handle from another builder.
    let other = TopologyBuilder::new();
    let foreign = other.key_value_store("foreign", Str, Str);
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .process(
            "p",
            &[&foreign],
            |_ctx: &mut ProcessorContext<'_, String, String>, _k: String, _v: String| Ok(()),
        )
        .with_value_codec(Str)
        .to("out");
    let e = b.build().unwrap_err();
    assert_eq!(
        e,
        BuildError::UndeclaredStore {
            node: "p".into(),
            store: "foreign".into()
        }
    );

    // One store used from two streams joins them into one sub-topology
    // (their topics are read together, partition by partition).
    let b = TopologyBuilder::new();
    let s = b.key_value_store("shared", Str, Str);
    for (topic, name) in [("a", "pa"), ("b", "pb")] {
        b.stream(topic, Str, Str)
            .process(
                name,
                &[&s],
                |ctx: &mut ProcessorContext<'_, String, String>, k, v| {
                    ctx.forward(k, v);
                    Ok(())
                },
            )
            .to(format!("{topic}-out"));
    }
    let t = b.build().unwrap();
    assert_eq!(t.subtopology_count(), 1);
    assert_eq!(t.subtopology_sources(0), vec!["a", "b"]);
}

#[test]
fn subtopology_names_do_not_move_when_operators_are_added_elsewhere() {
    let names = |extra: bool| {
        let b = TopologyBuilder::new();
        if extra {
            b.stream("aaa", Str, Str).filter(|_, _| true).to("x");
        }
        let counts = b.key_value_store("counts", Str, Json::<u64>::new());
        b.stream("in", Str, Str)
            .map_values(|v: String| v)
            .process(
                "p",
                &[&counts],
                |ctx: &mut ProcessorContext<'_, String, String>, k, v| {
                    ctx.forward(k, v);
                    Ok(())
                },
            )
            .to("out");
        b.stream("zzz", Str, Str).to("y");
        let t = b.build().unwrap();
        let mut n: Vec<String> = (0..t.subtopology_count())
            .map(|i| t.subtopology_name(i).to_string())
            .collect();
        n.sort();
        n
    };
    let without = names(false);
    let with = names(true);
    assert_eq!(without, vec!["counts", "from-zzz"]);
    assert_eq!(with, vec!["counts", "from-aaa", "from-zzz"]);
}

proptest! {
    /// Counts in the store equal a naive count, whatever the key sequence
    /// and wherever refused records fall.
    #[test]
    fn store_counts_match_a_naive_count(records in prop::collection::vec((0u8..5, any::<bool>()), 0..60)) {
        let (t, counts) = counting();
        let d = TopologyTestDriver::new(t);
        let input = d.input_topic("in", Str, Str);
        let mut model = std::collections::BTreeMap::new();
        for (k, fail) in &records {
            let key = format!("k{k}");
            input.pipe_input(key.clone(), if *fail { "fail" } else { "ok" }.into());
            if !fail {
                *model.entry(key).or_insert(0u64) += 1;
            }
        }
        let got: std::collections::BTreeMap<String, u64> = d.store_entries(&counts).into_iter().collect();
        prop_assert_eq!(got, model);
        prop_assert_eq!(d.dead_letters().len(), records.iter().filter(|(_, f)| *f).count());
    }
}

#[test]
fn parameters_are_typed_listed_and_set_once() {
    let b = TopologyBuilder::new();
    let min = b.param("min-len", 2_u64, "values shorter than this are dropped");
    let label = b.param("label", String::from("x"), "prefix of every output");
    b.stream("in", Str, Str)
        .filter(move |_, v: &String| v.len() as u64 >= min.get())
        .map_values(move |v: String| format!("{}:{v}", label.get()))
        .to("out");
    let t = b.build().unwrap();
    let listed: Vec<(String, String, String)> = t
        .params()
        .into_iter()
        .map(|p| (p.name, p.kind, p.default))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("min-len".into(), "u64".into(), "2".into()),
            ("label".into(), "string".into(), "x".into())
        ]
    );
    assert!(t
        .describe()
        .to_string()
        .contains("min-len (u64, default 2)"));
    let e = t.set_param("min_len", "many").unwrap_err();
    assert!(e.contains("u64") && e.contains("min-len"), "{e}");
    let e = t.set_param("max_len", "3").unwrap_err();
    assert!(e.contains("max_len") && e.contains("min-len, label"), "{e}");
    // WEIR_PARAMS__MIN_LEN arrives as "min_len": '-' and '_' match.
    t.set_param("MIN_LEN", "3").unwrap();
    assert!(t.set_param("min-len", "4").is_err(), "set once");
    let d = TopologyTestDriver::new(t);
    let input = d.input_topic("in", Str, Str);
    for v in ["ab", "abc", "abcd"] {
        input.pipe_input("k".into(), v.into());
    }
    assert_eq!(
        d.output_topic("out", Str, Str).read_values_to_list(),
        vec!["x:abc", "x:abcd"]
    );

    let b = TopologyBuilder::new();
    let _ = b.param("p", 1_u64, "");
    let _ = b.param("p", 2_u64, "");
    b.stream("in", Str, Str).to("out");
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::DuplicateParam { name: "p".into() }
    );
}

/// A processor whose `init` fails: the task cannot run, so its records are
/// not dead-lettered one by one (the driver, like the runtime, stops).
struct BrokenInit;

impl Processor<String, String, String, String> for BrokenInit {
    fn init(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessError> {
        Err(ProcessError::operator("no config"))
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        key: String,
        value: String,
    ) -> Result<(), ProcessError> {
        ctx.forward(key, value);
        Ok(())
    }
}

#[test]
fn a_failing_init_stops_the_task_naming_the_node() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .process_with("broken", &[], || BrokenInit)
        .to("out");
    let d = TopologyTestDriver::new(b.build().unwrap());
    let input = d.input_topic("in", Str, Str);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        input.pipe_input("k".into(), "v".into())
    }));
    let message = r
        .unwrap_err()
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("broken") && message.contains("init failed"),
        "{message}"
    );
}
