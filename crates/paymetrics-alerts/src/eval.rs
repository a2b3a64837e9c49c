//! Evaluating rules in process against the recorder's windows, with hysteresis.
//!
//! Each evaluation computes every rule's aggregate over its window. A rule goes from OK to
//! ALERT after [`trigger_after`](Evaluator::trigger_after) consecutive breaching evaluations,
//! and back after [`recover_after`](Evaluator::recover_after) consecutive clean ones (2 each by
//! default), so one sample never flaps it. A window without data leaves the state as it is
//! (Datadog's `notify_no_data: false`). Every transition is sent as a DogStatsD event and a
//! service check `paymetrics.alert.<rule>` through the paymetrics handle, and reported to the
//! callback.

use std::{
    collections::HashMap,
    fmt,
    sync::{Mutex, PoisonError},
    time::SystemTime,
};

use paymetrics::{
    PaymetricsHandle,
    clock::SharedClock,
    message::{AlertType, Event, ServiceCheck, ServiceCheckStatus},
    window::{Span, WindowConfig, Windows},
};

use crate::rule::{Aggregation, AlertRule, MetricType, Severity};

/// A rule's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// Not breaching.
    Ok,
    /// Breaching.
    Alert,
}

/// A change of state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The rule's name.
    pub rule: String,
    /// The new state.
    pub to: AlertState,
    /// The aggregate that caused it.
    pub value: f64,
    /// When.
    pub at: SystemTime,
}

#[derive(Debug, Clone, Copy)]
struct RuleState {
    state: AlertState,
    streak: u32,
    last_value: Option<f64>,
}

type Callback = Box<dyn Fn(&Transition) + Send + Sync>;

/// Evaluates rules against windows and keeps their states.
pub struct Evaluator {
    rules: Vec<AlertRule>,
    windows: Windows,
    states: HashMap<String, RuleState>,
    handle: Option<PaymetricsHandle>,
    callback: Option<Callback>,
    trigger_after: u32,
    recover_after: u32,
}

impl fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluator")
            .field("rules", &self.rules.len())
            .field("states", &self.states)
            .field("trigger_after", &self.trigger_after)
            .field("recover_after", &self.recover_after)
            .finish_non_exhaustive()
    }
}

/// The windows configuration rules need: every rule's metric tracked.
pub fn window_config(rules: &[AlertRule]) -> WindowConfig {
    WindowConfig::tracking(rules.iter().map(|r| r.metric.clone()))
}

/// A rule's aggregate over its window ending at `now`, or `None` without data.
pub fn aggregate(rule: &AlertRule, windows: &Windows, now: SystemTime) -> Option<f64> {
    let span = Span::Last(rule.window);
    let m = rule.metric.as_str();
    match (&rule.aggregation, rule.metric_type) {
        (Aggregation::Ratio { numerator }, _) => {
            let all = windows.counter_sum(m, None, span, now);
            let tag = numerator
                .split_once(':')
                .unwrap_or((numerator.as_str(), ""));
            let part = windows.counter_sum(m, Some(tag), span, now);
            (all > 0).then(|| part as f64 * 100.0 / all as f64)
        }
        (agg, MetricType::Count) => {
            let sum = windows.counter_sum(m, None, span, now) as f64;
            match agg {
                Aggregation::Sum | Aggregation::Max | Aggregation::Avg | Aggregation::Min => {
                    Some(sum)
                }
                _ => None,
            }
        }
        (agg, MetricType::Distribution) => {
            let h = windows.histogram(m, None, span, now);
            if h.count == 0 {
                return None;
            }
            match agg {
                Aggregation::Avg => h.mean(),
                Aggregation::Sum => Some(h.sum),
                Aggregation::Min => Some(h.min),
                Aggregation::Max => Some(h.max),
                Aggregation::P50 => h.quantile(0.50),
                Aggregation::P95 => h.quantile(0.95),
                Aggregation::P99 => h.quantile(0.99),
                Aggregation::Ratio { .. } => None,
            }
        }
        (agg, MetricType::Gauge) => {
            let stats = windows.gauge_stats(m, span, now)?;
            Some(match agg {
                Aggregation::Sum => stats.sum,
                Aggregation::Min => stats.min,
                Aggregation::Max => stats.max,
                _ => stats.mean(),
            })
        }
    }
}

impl Evaluator {
    /// Evaluates `rules` against `windows` (which must track their metrics: see
    /// [`window_config`]). Every rule starts OK.
    pub fn new(rules: Vec<AlertRule>, windows: Windows) -> Self {
        let states = rules
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    RuleState {
                        state: AlertState::Ok,
                        streak: 0,
                        last_value: None,
                    },
                )
            })
            .collect();
        Self {
            rules,
            windows,
            states,
            handle: None,
            callback: None,
            trigger_after: 2,
            recover_after: 2,
        }
    }

    /// Sends transitions as DogStatsD events and service checks through this handle.
    pub fn send_to(mut self, handle: PaymetricsHandle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// Calls `callback` with every transition.
    pub fn on_transition(mut self, callback: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.callback = Some(Box::new(callback));
        self
    }

    /// Consecutive breaching evaluations before ALERT (at least 1).
    pub fn trigger_after(mut self, evaluations: u32) -> Self {
        self.trigger_after = evaluations.max(1);
        self
    }

    /// Consecutive clean evaluations before OK again (at least 1).
    pub fn recover_after(mut self, evaluations: u32) -> Self {
        self.recover_after = evaluations.max(1);
        self
    }

    /// The rules.
    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// Every rule's current state and last aggregate, in rule order.
    pub fn states(&self) -> Vec<(String, AlertState, Option<f64>)> {
        self.rules
            .iter()
            .map(|r| {
                let s = self.states[&r.name];
                (r.name.clone(), s.state, s.last_value)
            })
            .collect()
    }

    /// One rule's current state.
    pub fn state(&self, rule: &str) -> Option<AlertState> {
        self.states.get(rule).map(|s| s.state)
    }

    /// Evaluates every rule at `now`; returns (and sends, and reports) the transitions.
    pub fn evaluate(&mut self, now: SystemTime) -> Vec<Transition> {
        let mut transitions = Vec::new();
        for rule in &self.rules {
            let Some(value) = aggregate(rule, &self.windows, now) else {
                continue;
            };
            let state = self
                .states
                .get_mut(&rule.name)
                .expect("every rule has a state");
            state.last_value = Some(value);
            let breached = rule.comparison.breached(value, rule.threshold);
            let (wanted, needed) = match state.state {
                AlertState::Ok => (breached, self.trigger_after),
                AlertState::Alert => (!breached, self.recover_after),
            };
            state.streak = if wanted { state.streak + 1 } else { 0 };
            if state.streak >= needed {
                state.streak = 0;
                state.state = match state.state {
                    AlertState::Ok => AlertState::Alert,
                    AlertState::Alert => AlertState::Ok,
                };
                transitions.push(Transition {
                    rule: rule.name.clone(),
                    to: state.state,
                    value,
                    at: now,
                });
            }
        }
        for t in &transitions {
            let rule = self
                .rules
                .iter()
                .find(|r| r.name == t.rule)
                .expect("transition of a known rule");
            if let Some(handle) = &self.handle {
                for message in notifications(rule, t) {
                    if !handle.send(message) {
                        tracing::warn!(target: "paymetrics::alerts", rule = %rule.name, "alert notification dropped: message queue full");
                    }
                }
            }
            if let Some(callback) = &self.callback {
                callback(t);
            }
        }
        transitions
    }
}

/// The event and service check a transition is sent as.
pub fn notifications(rule: &AlertRule, t: &Transition) -> [paymetrics::message::Message; 2] {
    let alerting = t.to == AlertState::Alert;
    let title = if alerting {
        format!(
            "[{}] {}",
            rule.severity.as_str().to_uppercase(),
            rule.title()
        )
    } else {
        format!("[RECOVERED] {}", rule.title())
    };
    let text = format!(
        "{} {} {} {} (value {:.2} over {})",
        if rule.message.is_empty() {
            rule.title()
        } else {
            rule.message.clone()
        },
        rule.metric,
        rule.comparison.as_str(),
        rule.threshold,
        t.value,
        crate::rule::window_to_text(rule.window)
    );
    let alert_type = match (alerting, rule.severity) {
        (false, _) => AlertType::Success,
        (true, Severity::Critical) => AlertType::Error,
        (true, Severity::Warning) => AlertType::Warning,
    };
    let status = match (alerting, rule.severity) {
        (false, _) => ServiceCheckStatus::Ok,
        (true, Severity::Critical) => ServiceCheckStatus::Critical,
        (true, Severity::Warning) => ServiceCheckStatus::Warning,
    };
    let event = Event::new(title, text.clone())
        .alert_type(alert_type)
        .aggregation_key(format!("paymetrics.alert.{}", rule.name))
        .timestamp(t.at)
        .tag("alert", &rule.name)
        .tag("severity", rule.severity.as_str());
    let check = ServiceCheck::new(format!("paymetrics.alert.{}", rule.name), status)
        .timestamp(t.at)
        .message(text)
        .tag("severity", rule.severity.as_str());
    [event.into(), check.into()]
}

/// An [`Evaluator`] run by the `paymetrics-automation` scheduler: every collector interval
/// (30 s by default) it evaluates the rules at the scheduler's clock.
///
/// ```no_run
/// # async fn run(metrics: paymetrics::Paymetrics) {
/// use paymetrics_alerts::{Evaluator, default_rules, eval::{AlertEvaluation, window_config}};
/// let (exporter, windows) = window_config(&default_rules()).build();
/// // ... give `exporter` to PaymetricsBuilder::exporter before building `metrics` ...
/// let evaluator = Evaluator::new(default_rules(), windows.clone()).send_to(metrics.handle());
/// let automation = paymetrics_automation::Automation::builder(&metrics, windows)
///     .collector(AlertEvaluation::new(evaluator, metrics.clock()))
///     .spawn()
///     .unwrap();
/// # drop(automation);
/// # }
/// ```
#[derive(Debug)]
pub struct AlertEvaluation {
    evaluator: Mutex<Evaluator>,
    clock: SharedClock,
}

impl AlertEvaluation {
    /// Evaluates `evaluator`'s rules at `clock`'s time whenever the scheduler collects.
    pub fn new(evaluator: Evaluator, clock: SharedClock) -> Self {
        Self {
            evaluator: Mutex::new(evaluator),
            clock,
        }
    }

    /// Every rule's current state (see [`Evaluator::states`]).
    pub fn states(&self) -> Vec<(String, AlertState, Option<f64>)> {
        self.evaluator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .states()
    }
}

impl paymetrics_automation::Collector for AlertEvaluation {
    fn collect(&self) {
        let now = self.clock.now();
        self.evaluator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .evaluate(now);
    }
}
