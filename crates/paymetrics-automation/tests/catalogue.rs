//! Everything the uniques collector records is in this crate's catalogue, and every entry is
//! recorded by it: the catalogue cannot drift from the code.

use std::sync::Arc;

use paymetrics::{catalogue::Catalogue, clock::SystemClock, uniques::Uniques};
use paymetrics_automation::{Collector, UniquesCollector, catalogue::METRICS};

#[test]
fn every_recorded_series_is_catalogued_and_every_entry_is_recorded() {
    let mut catalogue = Catalogue::new();
    catalogue.extend(METRICS).unwrap();
    let uniques = Arc::new(Uniques::new(Arc::new(SystemClock)));
    uniques.observe_active_user("user-1");
    let recorded = catalogue
        .check_during(|| UniquesCollector::new(uniques).collect())
        .unwrap_or_else(|e| panic!("{e}"));
    let catalogued: Vec<_> = {
        let mut v: Vec<_> = METRICS.iter().map(|d| d.name.to_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(recorded, catalogued);
}
