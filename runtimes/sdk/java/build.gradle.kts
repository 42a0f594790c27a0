// A subproject of your apache/airflow checkout's java-sdk build: copy this directory to
// java-sdk/finalstate-check/, add include("finalstate-check") to java-sdk/settings.gradle.kts, then
//   cd java-sdk && ./gradlew :finalstate-check:installDist
// The runtime is java-sdk/finalstate-check/build/install/finalstate-check/bin/finalstate-check.
plugins {
    application
}

dependencies {
    implementation(project(":sdk"))
}

application {
    mainClass = "org.finalstate.check.FinalstateCheck"
}
