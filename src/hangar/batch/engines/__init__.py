"""Scale-out engines for batch jobs (optional extras): Ray and Spark."""
