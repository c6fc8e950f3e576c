//! Selectors on the mini fixture, where the nearest neighbours are known.

#[path = "common/mod.rs"]
mod common;

use spider_bench::dataset::Spider;
use spider_bench::retrieval::select::{Method, Query, lexical_scores, rank};
use spider_bench::retrieval::skeleton::skeleton;

fn pool() -> (Spider, std::sync::Arc<spider_bench::retrieval::pool::ExamplePool>) {
    let spider = Spider::open(&common::mini_spider()).unwrap();
    let pool = spider_bench::run::load_pool(&spider).unwrap();
    (spider, pool)
}

fn ranked(method: Method, question: &str, db: &str, hypothesis: Option<&str>, k: usize) -> Vec<String> {
    let (spider, pool) = pool();
    let schemas = spider.load_schemas().unwrap();
    let schema = schemas.get(db).unwrap();
    let q = Query {
        question,
        schema,
        preliminary: hypothesis,
        seed: 1,
        options: Default::default(),
        exclude: &[],
    };
    let scores = lexical_scores(&pool, question, schema);
    rank(&pool, method, &q, k, &scores)
        .into_iter()
        .map(|i| pool.examples[i].question.clone())
        .collect()
}

#[test]
fn question_similarity_finds_the_question_with_the_same_words() {
    let got = ranked(
        Method::QuestionSimilarity,
        "How many purchases were there?",
        "concert_hall",
        None,
        1,
    );
    assert_eq!(got, ["How many purchases were placed?"]);
}

#[test]
fn masked_similarity_matches_shape_across_databases() {
    // "which <mask> live in <unk>" on orders_db is the same shape as the
    // concert_hall question below once schema words and values are masked.
    let got = ranked(
        Method::MaskedQuestionSimilarity,
        "Which singers live in Oslo?",
        "concert_hall",
        None,
        1,
    );
    assert_eq!(got, ["Which customers live in Oslo?"]);
}

#[test]
fn hyde_retrieves_by_the_skeleton_of_the_hypothetical_answer() {
    // A COUNT over one table: the pool's only such skeleton is the purchase count.
    let got = ranked(
        Method::Hyde,
        "Number of concerts?",
        "concert_hall",
        Some("SELECT count(*) FROM concert"),
        1,
    );
    assert_eq!(got, ["How many purchases were placed?"]);
    assert_eq!(
        skeleton("SELECT count(*) FROM concert", true),
        skeleton("SELECT count(*) FROM purchase", true)
    );
}

#[test]
fn difficulty_matched_keeps_to_the_predicted_hardness() {
    let (_, pool) = pool();
    let hypothesis = "SELECT T1.name FROM customer AS T1 JOIN purchase AS T2 ON T1.customer_id = T2.customer_id GROUP BY T1.customer_id HAVING count(*) > 1";
    let got = ranked(
        Method::DifficultyMatched,
        "Which customers bought twice?",
        "orders_db",
        Some(hypothesis),
        3,
    );
    let level = pool.examples.iter().find(|e| e.sql == hypothesis).unwrap().hardness;
    for q in &got {
        assert_eq!(
            pool.examples.iter().find(|e| &e.question == q).unwrap().hardness,
            level,
            "{q}"
        );
    }
}

#[test]
fn random_is_deterministic_per_seed_and_dail_prefers_the_skeleton() {
    let a = ranked(Method::Random, "anything", "concert_hall", None, 3);
    assert_eq!(a, ranked(Method::Random, "anything", "concert_hall", None, 3));
    assert_eq!(a.len(), 3);
    let got = ranked(
        Method::Dail,
        "What is the largest age of any singer?",
        "concert_hall",
        Some("SELECT max(age) FROM singer"),
        1,
    );
    assert_eq!(got, ["What is the largest quantity of any item?"]);
}

#[test]
fn hyde_options_compare_sql_text_or_skeletons_with_identifiers() {
    use spider_bench::retrieval::select::{HydeBy, RankOptions};
    let (spider, pool) = pool();
    let schemas = spider.load_schemas().unwrap();
    let schema = schemas.get("orders_db").unwrap();
    let hypothesis = "SELECT name FROM customer WHERE city = 'Lima'";
    let best = |options: RankOptions| {
        let q = Query {
            question: "x",
            schema,
            preliminary: Some(hypothesis),
            seed: 0,
            options,
            exclude: &[],
        };
        let scores = lexical_scores(&pool, "x", schema);
        pool.examples[rank(&pool, Method::Hyde, &q, 1, &scores)[0]].sql.clone()
    };
    let target = "SELECT name FROM customer WHERE city = 'Oslo'";
    assert_eq!(
        best(RankOptions {
            hyde_by: HydeBy::SqlText,
            keep_identifiers: false
        }),
        target
    );
    assert_eq!(
        best(RankOptions {
            hyde_by: HydeBy::Skeleton,
            keep_identifiers: true
        }),
        target
    );
}
