package layerselect_test

import (
	"fmt"
	"os"

	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

// Online selection during prefill: with keep 0.6 three of five layers stay
// full; as soon as a fourth full layer has been observed, the laziest one is
// chosen and its cache can be truncated at once.
func ExampleOnline() {
	ratios := []float64{0.72, 0.83, 0.656, 0.809, 0.532} // one per layer, in prefill order
	sel, err := layerselect.NewOnline(len(ratios), 0.6)
	if err != nil {
		panic(err)
	}
	for layer, r := range ratios {
		if lazy := sel.Observe(layer, r); len(lazy) > 0 {
			fmt.Printf("after layer %d: make lazy %v\n", layer, lazy)
		}
	}
	fmt.Println("lazy layers:", sel.Lazy())
	// Output:
	// after layer 3: make lazy [1]
	// after layer 4: make lazy [3]
	// lazy layers: [1 3]
}

func ExampleTopLazy() {
	lazy, err := layerselect.TopLazy([]float64{0.72, 0.83, 0.656, 0.809, 0.532}, 0.6)
	fmt.Println(lazy, err)
	// Output: [1 3] <nil>
}

func ExampleKeepCount() {
	fmt.Println(layerselect.KeepCount(5, 0.5), layerselect.KeepCount(10, 0.3), layerselect.KeepCount(64, 0.5))
	// Output: 3 3 32
}

// Calibration over several prompts. Layer 1 is lazy in both informative runs;
// layers 0 and 3 are lazy once each, and layer 3 wins the tie by its higher
// mean ratio. The all-ones run came from a prompt too short to tell layers
// apart and is ignored.
func ExampleCalibrate() {
	runs := [][]float64{
		{0.70, 0.85, 0.60, 0.80},
		{0.75, 0.80, 0.65, 0.70},
		{1, 1, 1, 1},
	}
	plan, err := layerselect.Calibrate(runs, 0.5, 4, 1020)
	if err != nil {
		panic(err)
	}
	plan.Source = "example"
	if _, err := plan.WriteTo(os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// {
	//   "num_hidden_layers": 4,
	//   "lazy_layers": [
	//     1,
	//     3
	//   ],
	//   "streaming_sink": 4,
	//   "streaming_window": 1020,
	//   "source": "example"
	// }
}
