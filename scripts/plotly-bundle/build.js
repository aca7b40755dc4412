// plotly.js's own esbuild settings (its esbuild-config.js), minified, with our entry point.
const esbuild = require('esbuild');
const { environmentPlugin } = require('esbuild-plugin-environment');
const { glsl } = require('esbuild-plugin-glsl');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');
const version = require('plotly.js/package.json').version;

esbuild
    .build({
        entryPoints: [__dirname + '/entry.js'],
        outfile: process.argv[2],
        format: 'iife',
        globalName: 'Plotly',
        bundle: true,
        minify: true,
        sourcemap: false,
        legalComments: 'none',
        banner: {
            js:
                `/*! plotly.js v${version} | (c) Plotly, Inc. | MIT license | ` +
                'partial bundle for attention-nas: core, scatter, scattergl, bar, box, parcoords ' +
                '(built by scripts/build-plotly-bundle.sh) */',
        },
        plugins: [InlineCSSPlugin(), glsl({ minify: true }), environmentPlugin({ NODE_DEBUG: false })],
        alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
        define: { global: 'window', 'define.amd': 'false' },
        target: 'es2016',
        logLevel: 'warning',
    })
    .catch(() => process.exit(1));
