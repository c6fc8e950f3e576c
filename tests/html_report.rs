//! The HTML report in a real browser: a run of three strategies whose
//! answers differ (wrong results, execution errors, no SQL, and predicted
//! SQL that tries to inject markup) on the mini fixture, against a loopback
//! fake model; the page written from its records, with result previews; then
//! headless Chromium opens it from file:// and the test checks what a person
//! would: no script error, the chart and the tables, the filters (and the
//! filters kept in the address), no injected script ran, no request left the
//! file. A full-page screenshot goes to target/test-artifacts/html-report.png.

#[path = "common/mod.rs"]
mod common;

use common::fake_llm::{FakeLlm, Reply, Script, question_of};
use common::{mini_gold, mini_run_options, mini_spider};
use headless_chrome::protocol::cdp::Page;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;
use spider_bench::dataset::Spider;
use spider_bench::eval::judge::Status;
use spider_bench::report::html::{HtmlInput, compute_previews, render, write};
use spider_bench::report::rows::{Row, load_run};
use spider_bench::report::stats::{StatsOptions, compare_rows};
use spider_bench::run::run;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STRATEGIES: [&str; 3] = ["zero-shot", "few-shot", "exec-retry"];

/// A prediction that would run a script if the page put it in as HTML.
const SCRIPT_INJECTION: &str = "SELECT '</script><script>window.pwned=1</script>' AS x";
/// One that would, as an attribute, and whose result rows carry it too
/// (SQLite reads an unknown double-quoted name as a string).
const IMG_INJECTION: &str = "SELECT \"<img src=x onerror=window.pwned=2>\" FROM singer";

/// The system's Chromium: /usr/bin/chromium, else `chromium` or
/// `chromium-browser` on PATH.
fn chromium() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/bin/chromium");
    if fixed.is_file() {
        return Some(fixed);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
}

/// Zero-shot (two messages, no examples) and exec-retry's first answer:
/// the gold, except a wrong count, the script injection and an unknown
/// column (which exec-retry's repair, a longer conversation, fixes).
/// Few-shot (its prompt holds examples): the gold, except an unknown table,
/// an answer without SQL and the attribute injection.
fn script() -> Script {
    let gold = mini_gold();
    Arc::new(move |body, _| {
        let q = question_of(body);
        let sql = gold.get(&q).cloned().unwrap_or_default();
        let msgs = body["messages"].as_array().cloned().unwrap_or_default();
        let few_shot = msgs.iter().any(|m| {
            m["content"]
                .as_str()
                .unwrap_or("")
                .contains("Examples of questions and their SQL")
        });
        let answer = if msgs.len() > 2 {
            sql
        } else if few_shot {
            match q.as_str() {
                "List the names of singers from France." => "SELECT name FROM nowhere".into(),
                "Names and ages of singers, oldest first." => {
                    return Reply::Answers(vec!["I am not able to answer this one.".into()]);
                }
                "Which countries do singers come from?" => IMG_INJECTION.into(),
                _ => sql,
            }
        } else {
            match q.as_str() {
                "How many singers are there?" => "SELECT 12345".into(),
                "Show every label." => SCRIPT_INJECTION.into(),
                "Which countries do singers come from?" => "SELECT nope FROM singer".into(),
                _ => sql,
            }
        };
        Reply::Answers(vec![format!("Here it is.\n```sql\n{answer}\n```")])
    })
}

/// Evaluates `expr` in the page and returns its value (through JSON).
fn eval(tab: &Tab, expr: &str) -> Value {
    let wrapped = format!("JSON.stringify((function () {{ return {expr}; }})())");
    let result = tab.evaluate(&wrapped, false).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let text = result.value.and_then(|v| v.as_str().map(str::to_string));
    serde_json::from_str(&text.unwrap_or_else(|| "null".into())).unwrap()
}

/// Sets a filter control's value as a person would change it, and returns
/// the number of question cards then shown.
fn set_filter(tab: &Tab, id: &str, value: &str, event: &str) -> u64 {
    let js = format!(
        "(function () {{ var e = document.getElementById({id}); e.value = {value}; \
         e.dispatchEvent(new Event({event}, {{ bubbles: true }})); \
         return document.querySelectorAll('#questions article.card').length; }})()",
        id = serde_json::to_string(id).unwrap(),
        value = serde_json::to_string(value).unwrap(),
        event = serde_json::to_string(event).unwrap(),
    );
    eval(tab, &js).as_u64().unwrap()
}

fn cards(tab: &Tab) -> u64 {
    eval(tab, "document.querySelectorAll('#questions article.card').length")
        .as_u64()
        .unwrap()
}

fn reset(tab: &Tab) {
    eval(tab, "document.getElementById('f-reset').click()");
}

/// Questions where some row's record has `status`.
fn expected_with_status(rows: &[Row], status: Status) -> usize {
    let ids: BTreeSet<usize> = rows
        .iter()
        .flat_map(|r| r.records.iter().filter(|x| x.status == status).map(|x| x.id))
        .collect();
    ids.len()
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

#[test]
fn the_report_page_works_in_a_headless_browser() {
    let Some(chrome) = chromium() else {
        common::skip(
            "html_report",
            "no Chromium (/usr/bin/chromium, or chromium on PATH): install Debian's chromium package \
             (tools/install-build-deps --test does)",
        );
        return;
    };
    let started = Instant::now();
    let dir = common::scratch("html", "report");
    let server = FakeLlm::start(script());
    let opts = mini_run_options(&server.url, &STRATEGIES, &dir.join("run"), &dir.join("c.sqlite"));
    run(&opts).unwrap();

    let loaded = load_run(&dir.join("run")).unwrap();
    assert!(loaded.damage.is_empty(), "{:?}", loaded.damage);
    let rows = loaded.rows;
    assert_eq!(rows.len(), 3);
    let status = |row: usize, question: &str| {
        rows[row]
            .records
            .iter()
            .find(|r| r.question == question)
            .unwrap_or_else(|| panic!("{question}"))
            .status
    };
    // The answers differ as scripted.
    assert_eq!(status(0, "Show every label."), Status::Wrong);
    assert_eq!(status(0, "Which countries do singers come from?"), Status::ExecError);
    assert_eq!(status(2, "Which countries do singers come from?"), Status::Correct);
    assert_eq!(status(1, "List the names of singers from France."), Status::ExecError);
    assert_eq!(status(1, "Which countries do singers come from?"), Status::Wrong);
    assert_eq!(status(0, "How many things are there?"), Status::Skipped);

    let summaries: Vec<_> = rows.iter().map(Row::summary).collect();
    let outcomes: Vec<_> = rows.iter().map(Row::outcomes).collect();
    let stats = compare_rows(&outcomes, 0, &StatsOptions::default());
    let spider = Spider::open(&mini_spider()).unwrap();
    let previews = compute_previews(&spider, &rows, 5);
    assert!(previews.gold.len() >= 11, "{:?}", previews.gold.keys());
    let mut input = HtmlInput {
        title: "mini <run> & \"friends\"".into(),
        rows: &rows,
        summaries: &summaries,
        stats: &stats,
        previews: None,
    };
    // Without the data the page says how to get the result rows.
    let without = render(&input);
    assert!(without.contains("id=\"no-previews\"") && without.contains("--data"));
    input.previews = Some(&previews);
    let path = write(&dir.join("html"), &input).unwrap();
    assert_eq!(path, dir.join("html/index.html"));
    let page = std::fs::read_to_string(&path).unwrap();
    assert!(!page.contains("id=\"no-previews\""));
    assert_eq!(page.matches("<script").count(), 2, "the data's script and the page's");
    assert_eq!(page.matches("</script>").count(), 2);
    assert!(page.contains("<title>mini &lt;run&gt; &amp; &quot;friends&quot;</title>"));
    assert!(!page.contains("window.pwned=1</script>"));

    let collected: Arc<Mutex<Vec<String>>> = Arc::default();
    let browser = Browser::new(LaunchOptions {
        path: Some(chrome),
        sandbox: false,
        headless: true,
        window_size: Some((1280, 900)),
        idle_browser_timeout: Duration::from_secs(60),
        ..LaunchOptions::default()
    })
    .unwrap();
    let tab = browser.new_tab().unwrap();
    tab.enable_log().unwrap().enable_runtime().unwrap();
    let sink = collected.clone();
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let line = match event {
            Event::RuntimeExceptionThrown(e) => Some(format!("exception: {:?}", e.params.exception_details)),
            Event::RuntimeConsoleAPICalled(e) => {
                let kind = format!("{:?}", e.params.Type);
                (kind == "Error" || kind == "Warning" || kind == "Assert")
                    .then(|| format!("console {kind}: {:?}", e.params.args))
            }
            Event::LogEntryAdded(e) => {
                let level = format!("{:?}", e.params.entry.level);
                (level == "Error" || level == "Warning").then(|| format!("log {level}: {}", e.params.entry.text))
            }
            _ => None,
        };
        if let Some(line) = line {
            sink.lock().unwrap().push(line);
        }
    }))
    .unwrap();

    let url = file_url(&path);
    tab.navigate_to(&url).unwrap().wait_until_navigated().unwrap();
    tab.wait_for_element("#questions article.card").unwrap();

    let total = rows[0].records.len() as u64;
    assert_eq!(total, 12);
    assert_eq!(
        eval(&tab, "document.getElementById('count').textContent"),
        format!("{total} of {total} questions")
    );
    assert_eq!(cards(&tab), total, "12 questions, all under the first page");
    // The chart: an inline SVG with one mark (the error bar's centre) per row.
    assert_eq!(eval(&tab, "document.querySelectorAll('#ladder svg').length"), 1);
    assert_eq!(eval(&tab, "document.querySelectorAll('#ladder svg circle').length"), 3);
    let svg_text = eval(&tab, "document.querySelector('#ladder svg').textContent");
    for s in STRATEGIES {
        assert!(svg_text.as_str().unwrap().contains(s), "{svg_text}");
    }
    // The tables: one row per strategy.
    assert_eq!(
        eval(&tab, "document.querySelectorAll('#comparison tbody tr').length"),
        3
    );
    assert_eq!(eval(&tab, "document.querySelectorAll('#failures tbody tr').length"), 3);
    assert!(
        eval(&tab, "document.getElementById('detectable').textContent")
            .as_str()
            .unwrap()
            .starts_with("Differences under")
    );
    // Every answer beside the gold; result rows and traces where there are.
    assert_eq!(eval(&tab, "document.querySelectorAll('.answer').length"), total * 4);
    assert!(eval(&tab, "document.querySelectorAll('.answer.gold table.rows').length").as_u64() >= Some(11));
    assert!(eval(&tab, "document.querySelectorAll('details.trace').length").as_u64() >= Some(30));

    // Filters change what is shown, and the address keeps them.
    let wrong = expected_with_status(&rows, Status::Wrong) as u64;
    assert!(wrong >= 3 && wrong < total);
    assert_eq!(set_filter(&tab, "f-status", "wrong", "change"), wrong);
    assert_eq!(eval(&tab, "location.hash"), "#status=wrong");
    let exec = expected_with_status(&rows, Status::ExecError) as u64;
    assert_eq!(set_filter(&tab, "f-status", "exec_error", "change"), exec);
    let few_shot_exec = rows[1].records.iter().filter(|r| r.status == Status::ExecError).count() as u64;
    assert!(few_shot_exec < exec);
    assert_eq!(set_filter(&tab, "f-strategy", "few-shot", "change"), few_shot_exec);
    assert_eq!(eval(&tab, "location.hash"), "#status=exec_error&strategy=few-shot");
    reset(&tab);
    assert_eq!(cards(&tab), total);
    assert_eq!(set_filter(&tab, "f-db", "orders_db", "change"), 2);
    let orders_medium = rows[0]
        .records
        .iter()
        .filter(|r| r.db_id == "orders_db" && r.hardness.map(|h| h.as_str()) == Some("medium"))
        .count() as u64;
    assert_eq!(set_filter(&tab, "f-h", "medium", "change"), orders_medium);
    reset(&tab);
    // Text search over the SQL: the injected answers are there, as text.
    assert_eq!(set_filter(&tab, "f-q", "pwned", "input"), 2);
    let text = eval(&tab, "document.getElementById('questions').textContent");
    assert!(text.as_str().unwrap().contains(SCRIPT_INJECTION), "{text}");
    assert!(text.as_str().unwrap().contains(IMG_INJECTION), "{text}");
    assert_eq!(
        eval(
            &tab,
            "document.querySelectorAll('#questions img, #questions script').length"
        ),
        0
    );
    assert_eq!(set_filter(&tab, "f-q", "ORDER BY age DESC", "input"), 1);
    reset(&tab);
    assert_eq!(eval(&tab, "location.hash"), "", "no filter left in the address");

    // A changed address applies its filters.
    eval(&tab, "(location.hash = '#db=orders_db', 0)");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cards(&tab), 2);

    // A shared address applies its filters on load.
    let few_shot_correct = rows[1].records.iter().filter(|r| r.status == Status::Correct).count() as u64;
    assert!(few_shot_correct > 0 && few_shot_correct < total);
    tab.navigate_to("about:blank").unwrap().wait_until_navigated().unwrap();
    tab.navigate_to(&format!("{url}#strategy=few-shot&status=correct"))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    tab.wait_for_element("#questions article.card").unwrap();
    assert_eq!(cards(&tab), few_shot_correct);
    assert_eq!(eval(&tab, "document.getElementById('f-strategy').value"), "few-shot");
    assert_eq!(eval(&tab, "document.getElementById('f-status').value"), "correct");
    assert_eq!(
        eval(&tab, "document.querySelectorAll('.answer.chosen').length").as_u64(),
        Some(few_shot_correct),
        "the chosen strategy's answers are marked"
    );

    // No injected script ran, and nothing was fetched: only the file itself.
    assert_eq!(eval(&tab, "typeof window.pwned"), "undefined");
    let resources = eval(
        &tab,
        "performance.getEntriesByType('resource').map(function (e) { return e.name; })\
         .filter(function (n) { return n.indexOf('data:') !== 0; })",
    );
    assert_eq!(resources, serde_json::json!([]), "the page fetched something");

    // The whole page, unfiltered, for people to look at.
    reset(&tab);
    eval(&tab, "document.querySelectorAll('details.trace')[0].open = true");
    let height = eval(&tab, "document.documentElement.scrollHeight").as_f64().unwrap();
    let shot = tab
        .call_method(Page::CaptureScreenshot {
            format: Some(Page::CaptureScreenshotFormatOption::Png),
            quality: None,
            clip: Some(Page::Viewport {
                x: 0.0,
                y: 0.0,
                width: 1280.0,
                height,
                scale: 1.0,
            }),
            from_surface: Some(true),
            capture_beyond_viewport: Some(true),
            optimize_for_speed: None,
        })
        .unwrap();
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD.decode(shot.data).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("html-report.png"), png).unwrap();

    assert_eq!(eval(&tab, "typeof window.pwned"), "undefined");
    let errors = collected.lock().unwrap().clone();
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
    // The listener does hear them: an error thrown now is collected.
    eval(&tab, "(setTimeout(function () { throw new Error('probe'); }, 0), 0)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while collected.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let heard = collected.lock().unwrap().clone();
    assert!(
        heard.len() == 1 && heard[0].contains("probe"),
        "the error collector missed a thrown error: {heard:#?}"
    );
    eprintln!(
        "html_report: run, page and browser checks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
