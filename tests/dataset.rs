//! Loading Spider-format folders: schemas, splits, gold sources.

#[path = "common/mod.rs"]
mod common;

use spider_bench::dataset::{GoldSource, Spider, Split};

#[test]
fn schemas_have_tables_columns_and_keys() {
    let spider = Spider::open(&common::mini_spider()).unwrap();
    let schemas = spider.load_schemas().unwrap();
    let s = schemas.get("concert_hall").unwrap();
    let tables = s.tables();
    assert_eq!(
        tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["singer", "concert", "singer_in_concert"]
    );
    let singer = &tables[0];
    assert_eq!(singer.columns.len(), 5);
    assert!(singer.columns[0].primary_key && !singer.columns[1].primary_key);
    assert_eq!(
        (singer.columns[3].name.as_str(), singer.columns[3].ty.as_str()),
        ("age", "number")
    );
    let fks = s.foreign_key_refs();
    assert_eq!(fks.len(), 2);
    assert_eq!(
        (
            fks[0].from_table.as_str(),
            fks[0].from_column.as_str(),
            fks[0].to_table.as_str(),
            fks[0].to_column.as_str()
        ),
        ("singer_in_concert", "singer_id", "singer", "singer_id")
    );
}

#[test]
fn splits_take_gold_sql_from_the_gold_file_and_name_missing_splits() {
    let spider = Spider::open(&common::mini_spider()).unwrap();
    let (dev, source) = spider.load_split_with_source(Split::Dev).unwrap();
    assert_eq!(dev.len(), 12);
    assert!(matches!(source, GoldSource::GoldFile(_)));
    assert_eq!(dev[0].gold, "SELECT count(*) FROM singer");
    // No train_gold.sql here: the query field is used, and said so.
    let (train, source) = spider.load_split_with_source(Split::Train).unwrap();
    assert_eq!(train.len(), 8);
    assert_eq!(source, GoldSource::QueryField("no train_gold.sql".into()));
    let err = spider.load_split(Split::TrainOthers).unwrap_err().to_string();
    assert!(err.contains("train_others.json"), "{err}");
}
