//! Durable timers: through the TopologyTestDriver (stream-time and
//! wall-clock timers, cancel, punctuation, a failing timer dead-lettered,
//! outputs stamped with the deadline), and a property test that drives a
//! task's executor through random commits, aborts and restarts — over
//! in-memory stores and over RocksDB reopened at each restart — against a
//! simple model: every timer fires exactly once, in deadline order, and
//! only committed firings count.

use std::collections::BTreeMap;

use proptest::prelude::*;
use weir_core::{Headers, Json, ProcessError, Record, Str};
use weir_dsl::{
    Clock, Processor, ProcessorContext, TaskExecutor, Timer, Topology, TopologyBuilder,
};
use weir_state::{InMemoryBackend, RocksDbBackend, StateBudget, TaskState};
use weir_testkit::TopologyTestDriver;

/// For each input `(key, delta)`: a key starting with `w` sets its
/// wall-clock timer to the wall clock + delta, any other key its
/// stream-time timer to the record's timestamp + delta; delta 0 cancels,
/// a negative delta sets a timer whose call fails. A firing forwards
/// `(key, deadline)` to `fired`.
struct Delay;

fn clock_of(key: &str) -> Clock {
    if key.starts_with('w') {
        Clock::Wall
    } else {
        Clock::Stream
    }
}

impl Processor<String, i64, String, i64> for Delay {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        key: String,
        delta: i64,
    ) -> Result<(), ProcessError> {
        let clock = clock_of(&key);
        if delta == 0 {
            ctx.cancel_timer(clock, key.as_bytes())?;
            return Ok(());
        }
        let base = match clock {
            Clock::Wall => ctx.wall_clock(),
            Clock::Stream => ctx.timestamp(),
        };
        let payload = if delta < 0 { b"fail".as_slice() } else { b"" };
        ctx.schedule_at(clock, base + delta.abs(), key.as_bytes(), payload)
    }

    fn on_timer(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        timer: Timer,
    ) -> Result<(), ProcessError> {
        assert_eq!(
            ctx.timestamp(),
            timer.deadline,
            "a timer's call runs at its deadline"
        );
        if timer.payload == b"fail" {
            return Err(ProcessError::operator("this timer fails"));
        }
        ctx.forward(String::from_utf8(timer.key).unwrap(), timer.deadline);
        Ok(())
    }
}

fn delay_topology() -> Topology {
    let b = TopologyBuilder::new();
    let timers = b.timer_store("delay-timers");
    b.stream("in", Str, Json::<i64>::new())
        .process_with("delay", &[&timers], || Delay)
        .with_codecs(Str, Json::<i64>::new())
        .to("fired");
    b.build().unwrap()
}

#[test]
fn a_stream_time_timer_fires_once_its_deadline_passes_stamped_with_it() {
    let d = TopologyTestDriver::new(delay_topology());
    let input = d.input_topic("in", Str, Json::<i64>::new());
    let fired = d.output_topic("fired", Str, Json::<i64>::new());
    input.pipe_input_at("a".into(), 100, 1_000); // due at 1_100
    input.pipe_input_at("b".into(), 50, 1_010); // due at 1_060
    input.pipe_input_at("x".into(), 1, 1_059);
    assert!(
        fired.read_records().is_empty(),
        "stream time 1_059: nothing due"
    );
    input.pipe_input_at("y".into(), 1_000, 1_100);
    let records = fired.read_records();
    let got: Vec<(Vec<u8>, i64)> = records
        .iter()
        .map(|r| (r.key.clone().unwrap(), r.timestamp))
        .collect();
    // x fired at 1_060 (due 1_060), b at 1_060, a at 1_100: deadline order.
    assert_eq!(
        got,
        vec![
            (b"b".to_vec(), 1_060),
            (b"x".to_vec(), 1_060),
            (b"a".to_vec(), 1_100)
        ]
    );
    input.pipe_input_at("z".into(), 1, 5_000);
    let again: Vec<Vec<u8>> = fired
        .read_records()
        .into_iter()
        .map(|r| r.key.unwrap())
        .collect();
    // y is due at 2_100; z at 5_001 is not yet.
    assert_eq!(again, vec![b"y".to_vec()], "each timer fires once");
}

#[test]
fn a_wall_clock_timer_fires_while_inputs_are_idle_and_cancel_removes_one() {
    let d = TopologyTestDriver::new(delay_topology());
    d.set_wall_clock(10_000);
    let input = d.input_topic("in", Str, Json::<i64>::new());
    let fired = d.output_topic("fired", Str, Json::<i64>::new());
    input.pipe_input_at("w1".into(), 500, 1);
    input.pipe_input_at("w2".into(), 800, 2);
    input.pipe_input_at("w2".into(), 0, 3); // cancelled
    d.advance_wall_clock(499);
    assert!(fired.read_records().is_empty());
    d.advance_wall_clock(1);
    assert_eq!(
        fired.read_key_values_to_list(),
        vec![("w1".to_string(), 10_500)]
    );
    d.advance_wall_clock(10_000);
    assert!(
        fired.read_records().is_empty(),
        "w2 was cancelled; w1 fired once"
    );
}

#[test]
fn rescheduling_a_key_moves_its_timer() {
    let d = TopologyTestDriver::new(delay_topology());
    let input = d.input_topic("in", Str, Json::<i64>::new());
    let fired = d.output_topic("fired", Str, Json::<i64>::new());
    input.pipe_input_at("a".into(), 10, 0);
    input.pipe_input_at("a".into(), 100, 5); // now due at 105, not 10
    input.pipe_input_at("n".into(), 1_000, 50);
    assert!(fired.read_records().is_empty());
    input.pipe_input_at("n".into(), 1_000, 105);
    assert_eq!(
        fired.read_key_values_to_list(),
        vec![("a".to_string(), 105)]
    );
}

#[test]
fn a_failing_timer_is_dead_lettered_once_with_its_key_and_deadline() {
    let d = TopologyTestDriver::new(delay_topology());
    let input = d.input_topic("in", Str, Json::<i64>::new());
    input.pipe_input_at("bad".into(), -10, 0);
    input.pipe_input_at("n".into(), 1, 20);
    input.pipe_input_at("n".into(), 1, 40);
    let dead = d.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].key.as_deref(), Some(b"bad".as_slice()));
    assert_eq!(dead[0].value.as_deref(), Some(b"fail".as_slice()));
    assert_eq!(dead[0].topic, d.dead_letter_topic());
    assert_eq!(dead[0].headers.get_str("weir.node"), Some("delay"));
    let fired = d.output_topic("fired", Str, Json::<i64>::new());
    assert_eq!(fired.read_key_values_to_list(), vec![("n".to_string(), 21)]);
}

/// Counts punctuations: every 100 ms of stream time and every second of
/// wall-clock time, registered in `init`.
struct Ticker;

impl Processor<String, String, String, i64> for Ticker {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessError> {
        ctx.schedule_every(Clock::Stream, 100);
        ctx.schedule_every(Clock::Wall, 1_000);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, i64>,
        _key: String,
        _value: String,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        clock: Clock,
        time: i64,
    ) -> Result<(), ProcessError> {
        ctx.forward(clock.to_string(), time);
        Ok(())
    }
}

#[test]
fn punctuations_fire_on_each_crossed_interval_once() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Str)
        .process_with("tick", &[], || Ticker)
        .with_codecs(Str, Json::<i64>::new())
        .to("ticks");
    let d = TopologyTestDriver::new(b.build().unwrap());
    d.set_wall_clock(5_500);
    let input = d.input_topic("in", Str, Str);
    let ticks = d.output_topic("ticks", Str, Json::<i64>::new());
    input.pipe_input_at("k".into(), "v".into(), 1_050); // places both
    input.pipe_input_at("k".into(), "v".into(), 1_090);
    assert!(ticks.read_records().is_empty());
    input.pipe_input_at("k".into(), "v".into(), 1_100);
    input.pipe_input_at("k".into(), "v".into(), 1_450); // three crossed: once
    d.advance_wall_clock(400);
    d.advance_wall_clock(100);
    assert_eq!(
        ticks.read_key_values_to_list(),
        vec![
            ("stream-time".to_string(), 1_100),
            ("stream-time".to_string(), 1_450),
            ("wall-clock".to_string(), 6_000)
        ]
    );
}

#[test]
fn a_node_without_a_timer_store_gets_a_store_error() {
    let b = TopologyBuilder::new();
    b.stream("in", Str, Json::<i64>::new())
        .process_with("delay", &[], || Delay)
        .with_codecs(Str, Json::<i64>::new())
        .to("fired");
    let mut exec = TaskExecutor::new(b.build().unwrap(), 0, 0);
    let mut state = TaskState::new(Box::new(InMemoryBackend::new(0)), Vec::new());
    let err = exec
        .process(&input("a", 5, 0, 0), &mut Vec::new(), &mut state)
        .unwrap_err();
    assert!(err.to_string().contains("no timer store"), "{err}");
    assert_eq!(err.class(), weir_core::ErrorClass::Fatal);
}

#[test]
fn a_timer_store_belongs_to_one_node() {
    let b = TopologyBuilder::new();
    let timers = b.timer_store("t");
    let s = b.stream("in", Str, Json::<i64>::new());
    s.process_with("one", &[&timers], || Delay)
        .with_codecs(Str, Json::<i64>::new())
        .to("a");
    s.process_with("two", &[&timers], || Delay)
        .with_codecs(Str, Json::<i64>::new())
        .to("b");
    let Err(err) = b.build() else {
        panic!("a timer store named by two nodes is refused");
    };
    assert!(err.to_string().contains("one node"), "{err}");
}

fn input(key: &str, delta: i64, timestamp: i64, offset: i64) -> Record {
    Record {
        topic: "in".into(),
        partition: 0,
        offset,
        key: Some(key.as_bytes().to_vec()),
        value: Some(delta.to_string().into_bytes()),
        headers: Headers::new(),
        timestamp,
    }
}

/// One step of the harness after a record.
#[derive(Clone, Debug)]
enum Step {
    Nothing,
    Commit,
    Abort,
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Nothing),
        3 => Just(Step::Commit),
        1 => Just(Step::Abort),
        1 => Just(Step::Restart),
    ]
}

/// An input: key, delta (0 cancels), time since the previous input.
fn event() -> impl Strategy<Value = (String, i64, i64)> {
    (
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("c"),
            Just("wa"),
            Just("wb"),
            Just("wc")
        ],
        0i64..60,
        0i64..20,
    )
        .prop_map(|(k, d, gap)| (k.to_string(), d, gap))
}

/// The wall clock while record `i` is processed (a pure function of the
/// input, so re-processing after an abort sees the same clock).
fn wall_at(i: usize) -> i64 {
    1_000_000 + 7 * i as i64
}

/// What the firings must be: the inputs processed once each, in order;
/// before each, the timers due by its time and wall clock fire
/// (stream-time ones, then wall-clock ones, each by deadline then key);
/// at the end everything left.
fn model(inputs: &[(String, i64, i64)], end_wall: i64) -> Vec<(String, i64)> {
    let mut timers: BTreeMap<(Clock, String), i64> = BTreeMap::new();
    let mut fired = Vec::new();
    let (mut ts, mut stream) = (0i64, None::<i64>);
    let fire = |timers: &mut BTreeMap<(Clock, String), i64>,
                fired: &mut Vec<(String, i64)>,
                stream: Option<i64>,
                wall: i64| {
        for (clock, now) in [(Clock::Stream, stream), (Clock::Wall, Some(wall))] {
            let Some(now) = now else { continue };
            let mut due: Vec<(i64, String)> = timers
                .iter()
                .filter(|((c, _), d)| *c == clock && **d <= now)
                .map(|((_, k), d)| (*d, k.clone()))
                .collect();
            due.sort();
            for (d, k) in due {
                timers.remove(&(clock, k.clone()));
                fired.push((k, d));
            }
        }
    };
    for (i, (key, delta, gap)) in inputs.iter().enumerate() {
        ts += gap;
        stream = Some(stream.map_or(ts, |s| s.max(ts)));
        // What is due by the record's time fires before it.
        fire(&mut timers, &mut fired, stream, wall_at(i));
        let clock = clock_of(key);
        if *delta == 0 {
            timers.remove(&(clock, key.clone()));
        } else {
            let base = if clock == Clock::Wall { wall_at(i) } else { ts };
            timers.insert((clock, key.clone()), base + delta);
        }
    }
    fire(&mut timers, &mut fired, Some(i64::MAX), end_wall);
    fired
}

/// A task's executor and state, as the runtime holds them, over an
/// in-memory backend or RocksDB in `dir`.
struct Harness {
    topology: Topology,
    exec: TaskExecutor,
    state: TaskState,
    rocks: Option<(tempfile::TempDir, StateBudget)>,
    /// Committed: outputs, the next input, stream time.
    log: Vec<(String, i64)>,
    next: usize,
    stream_time: Option<i64>,
    /// The open transaction's outputs, and the next input it processes
    /// (back to `next` on an abort or a restart).
    open: Vec<(String, i64)>,
    processed: usize,
    budget: usize,
}

impl Harness {
    fn new(rocks: bool, budget: usize) -> Self {
        let topology = delay_topology();
        let rocks = rocks.then(|| (tempfile::tempdir().unwrap(), StateBudget::new(8 << 20)));
        let exec = TaskExecutor::new(topology.clone(), 0, 0);
        let state = Self::open_state(&exec, rocks.as_ref());
        Harness {
            topology,
            exec,
            state,
            rocks,
            log: Vec::new(),
            next: 0,
            stream_time: None,
            open: Vec::new(),
            processed: 0,
            budget,
        }
    }

    fn open_state(
        exec: &TaskExecutor,
        rocks: Option<&(tempfile::TempDir, StateBudget)>,
    ) -> TaskState {
        let names = exec.store_names().to_vec();
        match rocks {
            None => TaskState::new(Box::new(InMemoryBackend::new(names.len())), names),
            Some((dir, budget)) => {
                let backend = RocksDbBackend::open(dir.path(), &names, budget).unwrap();
                TaskState::new(Box::new(backend), names)
            }
        }
    }

    fn take(&mut self, out: &mut Vec<Record>) {
        for r in out.drain(..) {
            assert_eq!(r.topic, "fired");
            let key = String::from_utf8(r.key.unwrap()).unwrap();
            let deadline: i64 = serde_json::from_slice(&r.value.unwrap()).unwrap();
            assert_eq!(
                r.timestamp, deadline,
                "an output of a timer carries its deadline"
            );
            self.open.push((key, deadline));
        }
    }

    /// Fires what is due, chunk by chunk: a spent budget commits, as the
    /// runtime does.
    fn fire(&mut self) {
        let mut out = Vec::new();
        while self.exec.has_due_timers() {
            let run = self
                .exec
                .fire_timers(&mut out, &mut self.state, self.budget)
                .unwrap();
            assert!(run.failed.is_empty(), "{:?}", run.failed);
            self.take(&mut out);
            if run.fired == 0 {
                break;
            }
            if run.fired == self.budget {
                self.commit();
            }
        }
    }

    fn commit(&mut self) {
        self.state.commit(Vec::new()).unwrap();
        self.exec.committed();
        self.log.append(&mut self.open);
        self.stream_time = self.exec.stream_time();
        self.next = self.processed;
    }

    fn abort(&mut self) {
        self.state.abort();
        self.exec.reset();
        self.open.clear();
        self.processed = self.next;
    }

    /// A crash: everything uncommitted is lost; the task starts over from
    /// its committed state (RocksDB reopened; in memory, the committed
    /// state is kept as a restore would rebuild it) and stream time.
    fn restart(&mut self) {
        self.exec.close();
        self.open.clear();
        let mut exec = TaskExecutor::new(self.topology.clone(), 0, 0);
        exec.set_stream_time(self.stream_time);
        self.state.abort();
        if self.rocks.is_some() {
            // Close RocksDB before reopening it: only what it holds survives.
            self.state = TaskState::new(Box::new(InMemoryBackend::new(0)), Vec::new());
            self.state = Self::open_state(&exec, self.rocks.as_ref());
        }
        self.exec = exec;
        self.processed = self.next;
    }
}

fn run_harness(rocks: bool, budget: usize, inputs: &[(String, i64, i64)], steps: &[Step]) {
    let mut h = Harness::new(rocks, budget);
    let times: Vec<i64> = inputs
        .iter()
        .scan(0i64, |ts, (_, _, gap)| {
            *ts += gap;
            Some(*ts)
        })
        .collect();
    let mut s = 0usize;
    while h.processed < inputs.len() {
        let i = h.processed;
        let (key, delta, _) = &inputs[i];
        h.exec.set_wall_clock(wall_at(i));
        // As the runtime: timers due by the record's time fire before it.
        h.exec.advance_stream_time(times[i]);
        h.fire();
        let mut out = Vec::new();
        h.exec
            .process(
                &input(key, *delta, times[i], i as i64),
                &mut out,
                &mut h.state,
            )
            .unwrap();
        h.take(&mut out);
        h.processed += 1;
        h.fire();
        // Each step once: past them, the run only goes forward.
        match steps.get(s).cloned().unwrap_or(Step::Nothing) {
            Step::Nothing => {}
            Step::Commit => h.commit(),
            Step::Abort => h.abort(),
            Step::Restart => h.restart(),
        }
        s += 1;
    }
    // The end: every clock far ahead; what is left fires.
    let end_wall = wall_at(inputs.len()) + 1_000;
    h.exec.set_wall_clock(end_wall);
    h.exec.advance_stream_time(i64::MAX);
    h.fire();
    h.commit();
    assert_eq!(h.log, model(inputs, end_wall));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn timers_fire_once_in_deadline_order_across_commits_aborts_and_restarts(
        inputs in proptest::collection::vec(event(), 1..60),
        steps in proptest::collection::vec(step(), 1..30),
        budget in 1usize..6,
    ) {
        run_harness(false, budget, &inputs, &steps);
    }

    #[test]
    fn timers_on_rocksdb_fire_once_across_commits_aborts_and_restarts(
        inputs in proptest::collection::vec(event(), 1..40),
        steps in proptest::collection::vec(step(), 1..20),
        budget in 1usize..6,
    ) {
        run_harness(true, budget, &inputs, &steps);
    }
}
