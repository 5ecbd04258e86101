//! deploy/README.md walks through each way to run levee.

use super::*;

#[test]
fn deploy_readme_walks_through_each_way_and_names_the_topics() {
    let readme = read(&deploy().join("README.md"));
    assert!(readme.contains("# Deploying"));
    for section in ["Docker", "Compose", "Kubernetes", "systemd"] {
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with("## ") && l.contains(section)),
            "README has no \"## …{section}…\" section"
        );
    }
    for topic in TOPICS {
        assert!(readme.contains(&format!("`{topic}`")), "{topic}");
    }
    assert!(readme.contains("LEVEE__HTTP__LISTEN=0.0.0.0:9464"));
}
