//! Measures fixci's own verification work (used by `bench/verify.sh`):
//! `verify_bench seal REPO REV PARENT N`: seconds of each of N sealed checkouts of REV;
//! `verify_bench junit FILE N`: seconds of each of N parses of a JUnit report plus the by-id
//! comparison of its passed cases against themselves (the regression check's work).
use std::path::Path;
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("seal") => {
            let repo = git2::Repository::open(&a[2]).expect("repository");
            let commit = repo
                .revparse_single(&a[3])
                .and_then(|o| o.peel_to_commit())
                .expect("commit")
                .id();
            for _ in 0..a[5].parse::<usize>().expect("N") {
                let t = Instant::now();
                let s = fixci::verify::sealed::seal(&repo, commit, Some(Path::new(&a[4])))
                    .expect("seal");
                println!("{:.4}", t.elapsed().as_secs_f64());
                drop(s);
            }
        }
        Some("junit") => {
            let xml = std::fs::read_to_string(&a[2]).expect("report");
            for _ in 0..a[3].parse::<usize>().expect("N") {
                let t = Instant::now();
                let cases = fixci::runners::outcome::parse_junit(&xml).expect("JUnit");
                let passed: std::collections::HashSet<String> =
                    cases.iter().map(|c| c.id()).collect();
                let missing = cases.iter().filter(|c| !passed.contains(&c.id())).count();
                assert_eq!(missing, 0);
                println!("{:.4}", t.elapsed().as_secs_f64());
            }
        }
        _ => {
            eprintln!("usage: verify_bench seal REPO REV PARENT N | junit FILE N");
            std::process::exit(2);
        }
    }
}
